import numpy as np

from sessionrec.models.topk import select_top_k

NEG = -np.inf


def test_orders_by_score_then_lower_index():
    scores = np.array([[1, 3, 3, 2, 3]], dtype=np.float32)
    ((idx, vals),) = select_top_k(scores, 4)
    np.testing.assert_array_equal(idx, [1, 2, 4, 3])
    np.testing.assert_array_equal(vals, [3, 3, 3, 2])


def test_boundary_tie_group_filled_by_lower_index():
    scores = np.array([[1, 3, 2, 2, 2]], dtype=np.float32)
    ((idx, _),) = select_top_k(scores, 3)
    np.testing.assert_array_equal(idx, [1, 2, 3])


def test_never_returns_items_without_evidence():
    scores = np.array([[NEG, 0.5, NEG, 0.1], [NEG, NEG, NEG, NEG]], dtype=np.float32)
    (a, b) = select_top_k(scores, 3)
    np.testing.assert_array_equal(a[0], [1, 3])
    assert b[0].size == 0


def test_k_larger_than_catalog():
    scores = np.array([[0.2, 0.1, 0.3]], dtype=np.float32)
    ((idx, _),) = select_top_k(scores, 10)
    np.testing.assert_array_equal(idx, [2, 0, 1])


def test_drop_boundary_ties_removes_straddling_group_only():
    scores = np.array([[5, 4, 4, 3], [5, 4, 4, 4]], dtype=np.float32)
    first, second = select_top_k(scores, 3, drop_boundary_ties=True)
    np.testing.assert_array_equal(first[0], [0, 1, 2])  # group {1, 2} fits in 3
    np.testing.assert_array_equal(second[0], [0])  # group {1, 2, 3} straddles place 3


def test_matches_full_sort_on_random_scores():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 30)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = NEG
    for row, (idx, _) in zip(scores, select_top_k(scores, 7), strict=True):
        order = np.lexsort((np.arange(row.size), -row))
        expected = [i for i in order if row[i] > NEG][:7]
        np.testing.assert_array_equal(idx, expected)


def test_drop_boundary_ties_matches_reference_on_random_scores():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(80, 25)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = NEG
    for row, (idx, vals) in zip(
        scores, select_top_k(scores, 6, drop_boundary_ties=True), strict=True
    ):
        order = [i for i in np.lexsort((np.arange(row.size), -row)) if row[i] > NEG]
        expected = order[:6]
        if len(order) > 6 and row[order[5]] == row[order[6]]:
            expected = [i for i in expected if row[i] != row[order[6]]]
        np.testing.assert_array_equal(idx, expected)
        np.testing.assert_array_equal(vals, row[expected])
