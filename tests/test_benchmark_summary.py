"""``python -m benchmarks.summary``: every row of the summary table it regenerates is defined
from committed files, and writing figures back changes only their cell."""

from __future__ import annotations

import pytest
from benchmarks.common import PARAMS, read_params_file
from benchmarks.summary import (
    ROWS,
    TABLE,
    hyperparameters,
    select,
    table_figures,
    with_figures,
)


def test_every_defined_row_is_in_the_table_and_every_model_row_is_defined() -> None:
    written = table_figures(TABLE.read_text())
    assert set(ROWS) <= set(written)
    # the P rows are peer side-by-sides on other protocols, with their own scripts
    assert {r for r in written if not r.startswith("P")} == set(ROWS)


@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_each_row_reads_its_committed_hyperparameters(row_id: str) -> None:
    row = ROWS[row_id]()
    params = hyperparameters(row, device=None)
    if row_id.startswith("K"):  # the committed file's search result (or the yardstick)
        assert row.params_file is not None
        assert params == read_params_file(PARAMS / row.params_file)
    if row.model in ("sasrec", "gru4rec", "srgnn", "narm", "stamp"):
        assert params["valid_fraction"] == 0.0 and params["n_epochs"] >= 1  # a fixed refit
    if row.model == "repeat" and row_id == "R1":
        assert params["base_params"]["k"] == 138  # the tuned vstan of Diginetica


def test_rows_are_chosen_by_id_or_letter_in_table_order() -> None:
    assert select("K6,B") == [f"B{i}" for i in range(1, 11)] + ["K6"]
    with pytest.raises(SystemExit, match="unknown rows"):
        select("Z9")


def test_writing_figures_changes_only_their_cell() -> None:
    text = (
        "| B1 | pop | Diginetica | 0.93 / 0.21 | 0.02 s | - |\n"
        "| B2 | spop | Diginetica | 21.08 / 13.65 | 0.02 s | - |\n"
        "| P4 | SASRec | Beauty | HR@10 / NDCG@10 7.39 / 3.62 | 20 epochs |\n"
    )
    assert table_figures(text) == {"B1": ("0.93", "0.21"), "B2": ("21.08", "13.65")}
    out = with_figures(text, {"B2": {"hr@20": 21.084, "mrr@20": 13.7}})
    assert out == text.replace("21.08 / 13.65", "21.08 / 13.70")
