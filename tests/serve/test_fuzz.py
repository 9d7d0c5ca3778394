"""Schema fuzzing: schemathesis generates requests from the OpenAPI schema (valid and
invalid ones) for every operation; the service must never answer 5xx, and its answers must
match the documented response schemas.

Bounded: a fixed number of examples per operation, derandomised so a failure reproduces.
The app runs with a catalog and an admin token so that rules, filters and the admin
endpoints are reachable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from sessionrec.serve.app import create_app  # noqa: E402
from sessionrec.serve.config import ServeConfig, VariantSpec  # noqa: E402

from .conftest import TRAIN, train_model, write_catalog  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
MAX_EXAMPLES = 25
TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    root = tmp_path_factory.mktemp("fuzz")
    model_dir = train_model("markov", TRAIN, root / "markov")
    train = root / "train.txt"
    train.write_text("\n".join(" ".join(map(str, s)) for s in TRAIN) + "\n")
    config = ServeConfig(
        variants=(VariantSpec("default", str(model_dir)), VariantSpec("b", str(model_dir))),
        catalog=str(write_catalog(root / "catalog.csv")),
        popularity=str(train),
        reload_interval=0,
        admin_token_env="SESSIONREC_FUZZ_TOKEN",
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("SESSIONREC_FUZZ_TOKEN", TOKEN)
    app = create_app(config)
    with TestClient(app):  # runs the lifespan: models loaded, store open
        yield app
    mp.undo()


def _check_operation(operation, mode) -> bool:
    """Fuzz one operation; False when no input of this mode exists (nothing to make invalid)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        # Admin calls carry the real token, so the authorised paths are fuzzed too.
        headers = {"Authorization": f"Bearer {TOKEN}"} if "/admin/" in case.path else None
        case.call_and_validate(
            headers=headers, checks=[not_a_server_error, response_schema_conformance]
        )

    try:
        run()
    except Unsatisfiable:
        return False
    return True


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schema_fuzzing_finds_no_server_error(fuzz_app, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    generation_mode = GenerationMode(mode)
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if _check_operation(operation, generation_mode):
            fuzzed.append(operation.label)
    for label in (
        "POST /v1/sessions/{session_id}/events",
        "GET /v1/sessions/{session_id}/recommendations",
        "POST /v1/recommendations",
        "POST /v1/feedback",
        "POST /v1/admin/models/{variant}/reload",
    ):
        assert label in fuzzed
