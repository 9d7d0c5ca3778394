import math

import numpy as np
import pytest

from sessionrec.evaluation import metrics

RANKS = np.array([1.0, 3.0, np.inf, 2.0, 25.0])


def test_hit_rate_counts_ranks_within_k():
    assert metrics.hit_rate(RANKS, 1) == pytest.approx(1 / 5)
    assert metrics.hit_rate(RANKS, 3) == pytest.approx(3 / 5)
    assert metrics.hit_rate(RANKS, 25) == pytest.approx(4 / 5)


def test_mrr_counts_zero_outside_k():
    assert metrics.mrr(RANKS, 20) == pytest.approx((1 + 1 / 3 + 1 / 2) / 5)
    assert metrics.mrr(RANKS, 2) == pytest.approx((1 + 1 / 2) / 5)


def test_ndcg_with_one_relevant_item():
    expected = (1 + 1 / math.log2(4) + 1 / math.log2(3)) / 5
    assert metrics.ndcg(RANKS, 3) == pytest.approx(expected)


def test_empty_ranks_give_zero():
    empty = np.zeros(0)
    assert metrics.hit_rate(empty, 5) == 0.0
    assert metrics.mrr(empty, 5) == 0.0
    assert metrics.ndcg(empty, 5) == 0.0


def test_coverage_counts_distinct_items_shown():
    lists = np.array([[0, 1, -1], [1, 2, -1]])
    assert metrics.coverage(lists, 10) == pytest.approx(0.3)


def test_popularity_is_mean_normalised_count_of_non_empty_lists():
    counts = np.array([10, 5, 0, 1])
    lists = np.array([[0, 1], [3, -1], [-1, -1]])
    # list 1: (1 + 0.5) / 2; list 2: 0.1; the empty list is left out
    assert metrics.popularity(lists, counts) == pytest.approx((0.75 + 0.1) / 2)


def test_truncate_drops_tie_group_straddling_the_cut():
    lists = np.array([[0, 1, 2, 3], [4, 5, 6, -1]])
    scores = np.array([[5, 4, 4, 3], [9, 8, 7, -np.inf]], dtype=np.float32)
    np.testing.assert_array_equal(metrics.truncate_lists(lists, scores, 2), [[0, -1], [4, 5]])
    np.testing.assert_array_equal(metrics.truncate_lists(lists, scores, 3), [[0, 1, 2], [4, 5, 6]])
    np.testing.assert_array_equal(metrics.truncate_lists(lists, scores, 4), lists)


def test_breakdown_by_prefix_length():
    ranks = np.array([1.0, 30.0, 2.0, np.inf, 5.0, 1.0])
    lengths = np.array([1, 1, 2, 4, 5, 12])
    table = metrics.by_length(ranks, lengths, 20)
    assert table["1"] == {"n_cases": 2, "hr@20": 0.5, "mrr@20": 0.5}
    assert table["2"] == {"n_cases": 1, "hr@20": 1.0, "mrr@20": 0.5}
    assert table["3"]["n_cases"] == 0
    assert table["4-5"] == {"n_cases": 2, "hr@20": 0.5, "mrr@20": pytest.approx(0.1)}
    assert table[">10"]["hr@20"] == 1.0
