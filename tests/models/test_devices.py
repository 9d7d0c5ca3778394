"""Every neural model on every device there is: learns, validates, saves, serves on the CPU.

The CPU rows run everywhere; the CUDA rows run where a GPU is (skipped otherwise), so the GPU
path of each model is checked by the same assertions that pass on the CPU. The data is a
deterministic successor (item -> item + 1 mod 12) that every model learns completely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from successor_data import successor_sessions

from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.persist import MANIFEST
from sessionrec.models.registry import create_model, load_model

torch = pytest.importorskip("torch")

N_ITEMS = 12
VOCAB = ItemVocab([f"i{x}" for x in range(N_ITEMS)])


TRAIN = SessionData.from_sequences(
    successor_sessions(300, N_ITEMS, 0, longest=6, label="i{}"), vocab=VOCAB
)
TEST = SessionData.from_sequences(
    successor_sessions(60, N_ITEMS, 1, longest=6, label="i{}"), vocab=VOCAB
)

PARAMS: dict[str, dict[str, Any]] = {
    "gru4rec": {"hidden_size": 32, "batch_size": 16, "n_sample": 8, "learning_rate": 0.1},
    "narm": {"embedding_size": 16, "hidden_size": 16, "dropout_embed": 0.0,
             "dropout_context": 0.0, "batch_size": 32, "learning_rate": 0.05},
    "stamp": {"embedding_size": 16, "batch_size": 32, "learning_rate": 0.05},
    "srgnn": {"hidden_size": 16, "lr_decay": 1.0, "batch_size": 32, "learning_rate": 0.02},
    "sasrec": {"hidden_size": 16, "n_blocks": 1, "n_heads": 2, "max_len": 6, "dropout": 0.0,
               "batch_size": 64, "learning_rate": 0.01},
    "sasrec-sampled": {"hidden_size": 16, "n_blocks": 1, "n_heads": 2, "max_len": 6,
                       "dropout": 0.0, "batch_size": 64, "learning_rate": 0.01,
                       "loss": "sampled", "n_negatives": 6},
}  # fmt: skip
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only wait on each other
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_trains_validates_and_serves_from_the_cpu(name: str, device: str, tmp_path: Path) -> None:
    model = create_model(
        name.split("-")[0],
        {**PARAMS[name], "n_epochs": 8, "valid_fraction": 0.2, "patience": 8, "device": device},
    )
    model.fit(TRAIN)
    history = model.training_history()
    assert history is not None
    assert len(history.valid) == len(history.losses) == len(history.seconds) == 8
    assert history.examples.dtype == np.int64 and (history.examples > 0).all()
    assert np.isfinite(history.losses).all()
    assert history.valid.max() >= 90.0
    assert history.best_epoch == int(np.argmax(history.valid)) + 1
    assert history.valid_metric == model.get_params()["selection_metric"]
    hr1 = evaluate(model, TEST, protocol="next", cutoffs=(1,)).metrics()["hr@1"]
    assert hr1 >= 90.0, f"{name} on {device} learned the successor for {hr1:.1f}% of clicks"
    top = model.recommend([["i3", "i4"]], k=1)[0]
    assert [r.item_id for r in top] == ["i5"]

    # A GPU-trained model serves where there is no GPU: its weights load on the CPU and
    # score the same.
    path = model.save(tmp_path / "model")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["params"]["device"] = "cpu"
    (path / MANIFEST).write_text(json.dumps(manifest))
    loaded = load_model(path)
    batch = model.encode_sessions([["i1", "i2", "i3"], ["i7"], ["i9", "i10", "i9", "i10"]])
    np.testing.assert_allclose(loaded.score(batch), model.score(batch), rtol=1e-4, atol=1e-4)
    reloaded = loaded.training_history()
    assert reloaded is not None and reloaded.best_epoch == history.best_epoch
    np.testing.assert_array_equal(reloaded.losses, history.losses)
    np.testing.assert_array_equal(reloaded.valid, history.valid)
