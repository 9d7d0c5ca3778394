"""The parts every neural model shares: batching, losses, sampling, optimiser, epoch loop.

Known answers are worked out by hand or with plain numpy next to the test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError, ModelError

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: two OpenMP threads only add waiting on a shared box

from sessionrec.evaluation.protocol import rank_targets  # noqa: E402
from sessionrec.models.neural import (  # noqa: E402
    adagrad,
    devices,
    gru4rec_training,
    losses,
    sampling,
    trainer,
)
from sessionrec.models.neural.common import ValidationCases, refit_params  # noqa: E402

CPU = torch.device("cpu")


# ------------------------------------------------------------------- session-parallel plan
def test_session_parallel_plan_known_answer() -> None:
    # Sessions A = 10 11 12, B = 20 21, C = 30 (one click: no example), D = 40 41 42 43.
    items = np.array([10, 11, 12, 20, 21, 30, 40, 41, 42, 43])
    offsets = np.array([0, 3, 5, 6, 10])
    plan = gru4rec_training.session_parallel_plan(offsets, items, batch_size=2)
    # step 0: slots hold A and B; B ends, its slot takes D (the next session, C skipped)
    # step 1: A's last example; A ends with no session left, so the batch shrinks to D
    # steps 2 and 3: D alone
    assert plan.step_offsets.tolist() == [0, 2, 4, 5, 6]
    assert plan.inputs.tolist() == [10, 20, 11, 40, 41, 42]
    assert plan.targets.tolist() == [11, 21, 12, 41, 42, 43]
    assert plan.sessions.tolist() == [0, 1, 0, 3, 3, 3]
    assert plan.starts.tolist() == [True, True, False, True, False, False]
    assert set(plan.keep) == {2} and plan.keep[2].tolist() == [1]  # D was slot 1 of step 1
    # a softmax over the batch's own targets needs two rows: stop when one is left
    short = gru4rec_training.session_parallel_plan(offsets, items, batch_size=2, min_rows=2)
    assert short.step_offsets.tolist() == [0, 2, 4]


def test_session_parallel_plan_covers_every_click_once_in_order() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, size=200)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(0, 50, size=offsets[-1])
    plan = gru4rec_training.session_parallel_plan(offsets, items, batch_size=7)
    expected = sum(max(n - 1, 0) for n in lengths.tolist())
    assert plan.n_rows == expected
    for s in np.flatnonzero(lengths >= 2)[:40]:
        rows = np.flatnonzero(plan.sessions == s)
        clicks = items[offsets[s] : offsets[s + 1]]
        np.testing.assert_array_equal(plan.inputs[rows], clicks[:-1])
        np.testing.assert_array_equal(plan.targets[rows], clicks[1:])
        assert plan.starts[rows].tolist() == [True] + [False] * (rows.size - 1)
        steps = np.searchsorted(plan.step_offsets, rows, side="right") - 1
        assert np.all(np.diff(steps) == 1), "a session advances one click per step"
    # sessions enter in order: the first step of each session is non-decreasing
    first_step = [
        int(np.searchsorted(plan.step_offsets, np.flatnonzero(plan.sessions == s)[0], "right"))
        for s in np.flatnonzero(lengths >= 2)
    ]
    assert first_step == sorted(first_step)
    assert max(np.diff(plan.step_offsets)) == 7


def test_session_parallel_plan_small_inputs() -> None:
    empty = gru4rec_training.session_parallel_plan(
        np.array([0, 1, 2]), np.array([5, 6]), batch_size=4
    )
    assert empty.n_steps == 0 and empty.n_rows == 0
    with pytest.raises(ConfigError):
        gru4rec_training.session_parallel_plan(np.array([0, 2]), np.array([1, 2]), batch_size=0)


# ---------------------------------------------------------------------------------- losses
def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_cross_entropy_with_logq_against_numpy() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 7))
    log_q = rng.normal(size=7)
    for logq in (0.0, 1.0, 0.5):
        corrected = scores - logq * log_q
        expected = -np.log(_softmax(corrected)[np.arange(3), np.arange(3)]).sum()
        got = losses.cross_entropy(torch.tensor(scores), torch.tensor(log_q), logq)
        assert float(got) == pytest.approx(expected, rel=1e-9)


def test_bpr_max_against_a_loop() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 6))
    bpreg, alpha = 0.9, 0.5

    def elu(x: float) -> float:
        return x if x > 0 else alpha * (math.exp(x) - 1)

    expected = 0.0
    for i in range(3):
        r = [elu(x) for x in scores[i]]
        negatives = [j for j in range(6) if j != i]
        z = sum(math.exp(r[j]) for j in negatives)
        s = {j: math.exp(r[j]) / z for j in negatives}
        ranking = sum(s[j] / (1 + math.exp(-(r[i] - r[j]))) for j in negatives)
        expected += -math.log(ranking + 1e-24) + bpreg * sum(s[j] * r[j] ** 2 for j in negatives)
    got = losses.bpr_max(torch.tensor(scores), bpreg=bpreg, elu_param=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # elu_param = 0 is the linear activation: same as the loss of pre-activated scores
    activated = np.vectorize(elu)(scores)
    linear = losses.bpr_max(torch.tensor(activated), bpreg=bpreg, elu_param=0.0)
    assert float(linear) == pytest.approx(expected, rel=1e-9)


def test_bpr_max_ignores_the_target_column_as_a_negative() -> None:
    # Raising a row's own target score must lower its loss, never act as a negative.
    scores = torch.zeros((2, 4), dtype=torch.float64)
    base = losses.bpr_max(scores, bpreg=0.0, elu_param=0.0)
    scores[0, 0] = 3.0
    assert float(losses.bpr_max(scores, bpreg=0.0, elu_param=0.0)) < float(base)


def test_sampled_loss_dispatch_and_validation() -> None:
    scores = torch.randn(2, 5, dtype=torch.float64)
    log_q = torch.randn(5, dtype=torch.float64)
    xe = losses.SampledLoss("cross-entropy", logq=1.0)
    assert xe.uses_log_q
    assert float(xe(scores, log_q)) == pytest.approx(float(losses.cross_entropy(scores, log_q, 1)))
    bpr = losses.SampledLoss("bpr-max", bpreg=0.5, elu_param=1.0)
    assert not bpr.uses_log_q
    assert float(bpr(scores)) == pytest.approx(float(losses.bpr_max(scores, 0.5, 1.0)))
    with pytest.raises(ConfigError, match="unknown loss"):
        losses.SampledLoss("top1")


# -------------------------------------------------------------------------------- sampling
def test_sampling_weights_follow_popularity_power() -> None:
    counts = np.array([0, 1, 4, 9, 16])
    np.testing.assert_allclose(sampling.sampling_weights(counts, 0.5), [0, 1, 2, 3, 4])
    np.testing.assert_allclose(sampling.sampling_weights(counts, 0.0), [0, 1, 1, 1, 1])
    log_w = sampling.log_sampling_weights(counts, 0.5)
    assert log_w[0] == -np.inf
    np.testing.assert_allclose(log_w[1:], 0.5 * np.log(counts[1:]), rtol=1e-6)


def test_sample_store_draws_popularity_to_the_alpha() -> None:
    counts = np.array([0, 1, 4, 9, 16, 0])
    generator = torch.Generator().manual_seed(0)
    store = sampling.SampleStore(
        counts, 0.5, n_sample=1000, generator=generator, device=CPU, store_size=7000
    )
    assert store.rows == 7
    expected = np.array([0, 1, 2, 3, 4, 0]) / 10.0
    np.testing.assert_allclose(store.probabilities(), expected, atol=1e-12)
    draws = [store.draw() for _ in range(30)]  # refills the 7-row store several times
    items = torch.cat([d[0] for d in draws]).numpy()
    frequency = np.bincount(items, minlength=6) / items.size
    assert frequency[0] == 0 and frequency[5] == 0, "items without clicks are never drawn"
    # 30,000 draws: the standard error of each frequency is below 0.003
    np.testing.assert_allclose(frequency, expected, atol=0.012)
    log_w = torch.cat([d[1] for d in draws]).numpy()
    np.testing.assert_allclose(log_w, 0.5 * np.log(counts[items]), rtol=1e-6)


def test_sample_store_is_reproducible_and_validates() -> None:
    counts = np.arange(10)

    def first_draws(seed: int) -> np.ndarray:
        store = sampling.SampleStore(
            counts, 0.75, 16, generator=torch.Generator().manual_seed(seed), device=CPU
        )
        return torch.stack([store.draw()[0] for _ in range(3)]).numpy()

    np.testing.assert_array_equal(first_draws(5), first_draws(5))
    assert not np.array_equal(first_draws(5), first_draws(6))
    with pytest.raises(ConfigError):
        sampling.SampleStore(
            np.zeros(4), 1.0, 8, generator=torch.Generator(), device=CPU
        )  # nothing to sample


# ------------------------------------------------------------------------------- optimiser
def _optimiser(compiled: bool, momentum: float) -> tuple[adagrad.AdagradM, list[torch.Tensor]]:
    torch.manual_seed(0)
    dense = adagrad.FlatParameters({"w": (3, 4), "b": (4,)}, CPU)
    with torch.no_grad():
        dense.flat.copy_(torch.randn(16))
    tables = [torch.randn(20, 5), torch.randn(20, 1)]
    opt = adagrad.AdagradM(dense, tables, lr=0.1, momentum=momentum, compiled=compiled)
    return opt, [dense.flat, *tables]


def test_adagrad_with_momentum_by_hand() -> None:
    dense = adagrad.FlatParameters({"w": (1,)}, CPU)
    table = torch.zeros((3, 1))
    for compiled in (True, False):
        with torch.no_grad():
            dense.flat.zero_()
        table.zero_()
        opt = adagrad.AdagradM(dense, [table], lr=0.1, momentum=0.5, compiled=compiled)
        rows = torch.tensor([1, 1])  # a row gathered twice: gradients 1 + 1 = 2
        grads = torch.tensor([[1.0], [1.0]])
        opt.step([torch.tensor([2.0])], [(0, rows, grads)])
        first = -0.1 * 2 / math.sqrt(4 + 1e-6)  # a = 4, v = step
        assert float(dense.flat[0]) == pytest.approx(first, rel=1e-6)
        assert table[:, 0].tolist() == pytest.approx([0.0, first, 0.0], rel=1e-6)
        opt.step([torch.tensor([2.0])], [(0, torch.tensor([1]), torch.tensor([[2.0]]))])
        second = 0.5 * first - 0.1 * 2 / math.sqrt(8 + 1e-6)  # a = 8, v = 0.5 v + step
        assert float(dense.flat[0]) == pytest.approx(first + second, rel=1e-6)
        assert float(table[1, 0]) == pytest.approx(first + second, rel=1e-6)
        assert float(table[0, 0]) == 0.0 == float(table[2, 0]), "untouched rows stay put"


@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_adagrad_compiled_and_tensor_paths_agree(momentum: float) -> None:
    results = []
    for compiled in (True, False):
        opt, weights = _optimiser(compiled, momentum)
        generator = torch.Generator().manual_seed(1)
        for _ in range(15):
            rows = torch.randint(0, 20, (30,), generator=generator)
            opt.step(
                [torch.randn(3, 4, generator=generator), torch.randn(4, generator=generator)],
                [
                    (0, rows, torch.randn(30, 5, generator=generator)),
                    (1, rows[:10], torch.randn(10, 1, generator=generator)),
                ],
            )
        results.append([w.clone() for w in weights])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_flat_parameters_share_one_buffer() -> None:
    flat = adagrad.FlatParameters({"a": (2, 3), "b": (3,)}, CPU)
    assert flat.flat.shape == (9,)
    assert flat["a"].is_leaf and flat["a"].requires_grad
    with torch.no_grad():
        flat.flat.copy_(torch.arange(9.0))
    assert flat["b"].tolist() == [6.0, 7.0, 8.0]


# ------------------------------------------------------------------------------ epoch loop
def test_loss_tracker_raises_on_nan() -> None:
    tracker = trainer.LossTracker("m", epoch=3, device=CPU, check_every=2)
    tracker.add(torch.tensor(2.0), 2)
    tracker.add(torch.tensor(4.0), 2)
    assert tracker.mean() == pytest.approx(1.5)
    tracker.add(torch.tensor(float("nan")), 2)
    with pytest.raises(ModelError, match=r"diverged.*epoch 3"):
        tracker.add(torch.tensor(1.0), 2)  # the periodic check sees the NaN


def test_train_epochs_keeps_the_best_epoch_and_stops_early() -> None:
    scores = iter([1.0, 3.0, 2.0, 2.5, 9.0])
    state = {"epoch": 0}
    ran = []

    def run_epoch(epoch: int) -> tuple[float, int]:
        ran.append(epoch)
        state["epoch"] = epoch
        return 1.0 / epoch, 10

    reports, best = trainer.train_epochs(
        model="m",
        n_epochs=5,
        run_epoch=run_epoch,
        validate=lambda: next(scores),
        patience=2,
        snapshot=lambda: dict(state),
        restore=lambda saved: state.update(saved),
    )
    assert ran == [1, 2, 3, 4], "two epochs without improvement after epoch 2: stop"
    assert best == 2 and state["epoch"] == 2, "the best epoch's weights are restored"
    assert [r.valid for r in reports] == [1.0, 3.0, 2.0, 2.5]
    # without validation every epoch runs and the last is selected
    reports, best = trainer.train_epochs(model="m", n_epochs=3, run_epoch=run_epoch)
    assert best == 3 and len(reports) == 3


def test_train_epochs_stops_before_an_epoch_that_would_pass_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = {"now": 100.0}
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: clock["now"])
    durations = {1: 10.0, 2: 30.0, 3: 10.0, 4: 10.0, 5: 10.0}  # epoch 2 is the longest

    def run_epoch(epoch: int) -> tuple[float, int]:
        clock["now"] += durations[epoch]
        return 1.0, 1

    def validate() -> float:
        clock["now"] += 2.0  # validation counts towards the budget
        return float(clock["now"])  # always improving: only the budget stops

    def epochs_run(budget: float | None, agree: Any = None) -> int:
        reports, _ = trainer.train_epochs(
            model="m",
            n_epochs=5,
            run_epoch=run_epoch,
            validate=validate,
            max_seconds=budget,
            agree=agree,
        )
        return len(reports)

    # used 12 + 32 = 44 s after two epochs; the longest took 32: 76 <= 80 starts epoch 3,
    # then 56 + 32 = 88 > 80 stops
    assert epochs_run(80.0) == 3
    assert epochs_run(75.0) == 2, "44 + 32 > 75"
    assert epochs_run(1.0) == 1, "the first epoch always runs"
    assert epochs_run(None) == 5
    assert epochs_run(1e6, agree=lambda out_of_time: True) == 1, "another rank is out of time"
    seen: list[bool] = []
    assert epochs_run(80.0, agree=lambda flag: seen.append(flag) or flag) == 3
    assert seen == [False, False, True], "every rank asked after each epoch but the last"


def test_train_epochs_raises_on_a_non_finite_loss() -> None:
    with pytest.raises(ModelError, match="diverged"):
        trainer.train_epochs(model="m", n_epochs=2, run_epoch=lambda e: (math.nan, 1))


def test_pessimistic_ranks_match_the_evaluation() -> None:
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(6, 9)).astype(np.float32)  # many ties
    scores[0, :] = -np.inf
    targets = rng.integers(0, 9, size=6)
    got = trainer.pessimistic_ranks(torch.tensor(scores), torch.tensor(targets)).numpy()
    np.testing.assert_array_equal(got, rank_targets(scores, targets, "pessimistic"))
    assert got[0] == np.inf


def test_validation_metric_ranks_tensors_like_arrays() -> None:
    # Models hand over tensors; on an accelerator they are ranked there with
    # pessimistic_ranks (checked against the evaluation above, and by the CUDA rows of
    # test_devices.py), on the CPU by the evaluation's ranking. Same metric either way.
    from sessionrec.data.sessions import SessionData

    valid = SessionData.from_sequences([[0, 1, 2, 3], [4, 5], [1, 0, 2], [6, 6, 6, 6, 6]])
    cases = ValidationCases(valid)
    rng = np.random.default_rng(5)
    table = rng.integers(0, 3, size=(cases.n, valid.n_items)).astype(np.float32)  # ties
    table[0, :] = -np.inf  # a case whose target is a miss
    rows = {tuple(cases.batch(i, i + 1).items.tolist()): i for i in range(cases.n)}
    assert len(rows) == cases.n  # every prefix tells its case

    def as_array(batch: Any) -> np.ndarray:
        prefixes = np.split(batch.items, np.cumsum(batch.lengths)[:-1])
        return table[[rows[tuple(p.tolist())] for p in prefixes]]

    ranks = rank_targets(table, cases.targets, "pessimistic")
    for metric, expected in (
        ("hr@20", 100 * np.mean(ranks <= 20)),
        ("mrr@20", 100 * np.mean(np.where(ranks <= 20, 1 / ranks, 0))),
    ):
        from_arrays = cases.metric(as_array, metric, chunk=3)
        from_tensors = cases.metric(lambda b: torch.tensor(as_array(b)), metric, chunk=3)
        assert from_arrays == pytest.approx(expected)
        assert from_tensors == pytest.approx(expected)
    assert 0 < cases.metric(as_array, "mrr@20", 3) < cases.metric(as_array, "hr@20", 3) < 100


def test_refit_params() -> None:
    chosen = {"n_epochs": 20, "valid_fraction": 0.1, "max_train_seconds": 300.0, "lr": 0.1}
    assert refit_params(chosen, 7) == {
        "n_epochs": 7,
        "valid_fraction": 0.0,
        "max_train_seconds": None,
        "lr": 0.1,
    }
    assert chosen["n_epochs"] == 20  # the caller's dict is left alone
    with pytest.raises(ConfigError, match="epochs"):
        refit_params(chosen, 0)


# ------------------------------------------------------------------------- devices, seeds
def test_resolve_device() -> None:
    assert devices.resolve_device("cpu") == CPU
    assert devices.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        devices.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            devices.resolve_device("cuda:0")


def test_seeded_is_reproducible_and_restores_the_caller_state() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with trainer.seeded(7, CPU) as generator:
        a = torch.rand(3), torch.rand(3, generator=generator)
    with trainer.seeded(7, CPU) as generator:
        b = torch.rand(3), torch.rand(3, generator=generator)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(torch.get_rng_state(), before)
