"""The benchmark protocol on the real shared splits against independent reference numbers.

Case counts must be exact; pop and sr (steps 10, weight 1/d, from the last item) must land
on the reference HR@20 / MRR@20 of shared/data/README.md and the foundation issue. A large
deviation means a bug in the protocol (ties, unknown items, case enumeration).

One known, explained gap: YooChoose 1/64 has test items unseen in training. Our protocol
drops them from the prefix (as the service does with unknown items), so in 279 cases whose
last click is unknown sr scores from the last known click; the reference gives those cases
no recommendation. That lifts sr by 0.08 / 0.03 there, hence the wider tolerance.
"""

import json

import pytest

from sessionrec.cli import main

REFERENCE = [
    # dataset folder, model, cases, HR@20, MRR@20, tolerance
    ("diginetica/srgnn", "pop", 60858, 0.93, 0.21, 0.01),
    ("diginetica/srgnn", "sr", 60858, 39.68, 13.71, 0.01),
    ("diginetica/srgnn", "itemknn", 60858, 36.09, 11.06, 0.01),
    ("yoochoose/srgnn-1_64", "pop", 55898, 7.31, 1.69, 0.01),
    ("yoochoose/srgnn-1_64", "sr", 55898, 66.88, 30.04, 0.1),
]


@pytest.mark.slow
@pytest.mark.parametrize(("folder", "model", "cases", "hr", "mrr", "tol"), REFERENCE)
def test_reference_numbers(shared_data, capsys, folder, model, cases, hr, mrr, tol):
    code = main(
        [
            "evaluate",
            "--benchmark",
            str(shared_data / folder),
            "--model",
            model,
            "--cutoffs",
            "20",
            "--json",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    payload = json.loads(out)
    assert payload["n_cases"] == cases
    assert payload["hr@20"] == pytest.approx(hr, abs=tol)
    assert payload["mrr@20"] == pytest.approx(mrr, abs=tol)
