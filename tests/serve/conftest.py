"""Fixtures of the service tests: a tiny shop with known answers, real Redis, real processes.

The shop: items 1-12 in three categories (shoes 1-4, shirts 5-8, hats 9-12), items 2 and 6
sold out, item 13 a new hat that is in the catalog but not in the training data. The model
is a first-order Markov chain, whose scores are transition counts, so every answer can be
worked out by hand from ``TRAIN``:

    from 1: 2 (3 times), 3 (2), 4 (1), 5 (1)      from 5: 6 (2), 7 (1), 8 (1)
    from 9: 10 (1)                                 from 13 or 99: nothing (unknown)

Internal indices follow first appearance in ``TRAIN``, which is id order (index = id - 1),
so ties are broken by the lower id.

Redis: tests start their own ``redis-server`` on a free port. Without the binary they skip,
unless ``SESSIONREC_REQUIRE_SERVICES=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessionrec.data.sessions import SessionData
from sessionrec.models.registry import create_model
from sessionrec.serve.config import ServeConfig, VariantSpec

TRAIN: list[list[int]] = [
    [1, 2], [1, 2], [1, 2], [1, 3], [1, 3], [1, 4], [1, 5],
    [5, 6], [5, 6], [5, 7], [5, 8],
    [9, 10], [10, 11], [11, 12], [12, 9],
    [3, 4], [6, 7], [7, 8], [2, 3],
]  # fmt: skip
CATEGORY = {**dict.fromkeys(range(1, 5), "shoes"), **dict.fromkeys(range(5, 9), "shirts")}
CATEGORY.update(dict.fromkeys(range(9, 14), "hats"))
SOLD_OUT = {2, 6}
POPULARITY = Counter(item for session in TRAIN for item in session)

REQUIRE_SERVICES = os.environ.get("SESSIONREC_REQUIRE_SERVICES") == "1"
SERVE_MODULES = ("fastapi", "uvicorn", "httpx", "redis", "prometheus_client", "hypothesis")
MISSING = [name for name in SERVE_MODULES if importlib.util.find_spec(name) is None]
if MISSING and not REQUIRE_SERVICES:
    # Without the serve extra there is nothing to test here; with SESSIONREC_REQUIRE_SERVICES=1
    # the imports fail loudly instead.
    collect_ignore_glob = ["test_*.py"]
THREADS_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Shop:
    root: Path
    train_file: Path
    catalog_csv: Path
    markov_dir: Path
    sr_dir: Path


def write_catalog(path: Path) -> Path:
    rows = ["item_id,name,category,available,price"]
    for item in range(1, 14):
        available = "false" if item in SOLD_OUT else "true"
        rows.append(f"{item},Item {item},{CATEGORY[item]},{available},{item}.99")
    path.write_text("\n".join(rows) + "\n")
    return path


def train_model(name: str, sessions: list[list[int]], folder: Path, **params: Any) -> Path:
    model = create_model(name, params).fit(SessionData.from_sequences(sessions))
    model.save(folder)
    return folder


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("shop")
    train_file = root / "train_sessions.txt"
    train_file.write_text("\n".join(" ".join(map(str, s)) for s in TRAIN) + "\n")
    return Shop(
        root=root,
        train_file=train_file,
        catalog_csv=write_catalog(root / "catalog.csv"),
        markov_dir=train_model("markov", TRAIN, root / "markov"),
        sr_dir=train_model("sr", TRAIN, root / "sr"),
    )


@pytest.fixture
def make_config(shop: Shop) -> Callable[..., ServeConfig]:
    def make(**overrides: Any) -> ServeConfig:
        settings: dict[str, Any] = {
            "variants": (VariantSpec("default", str(shop.markov_dir)),),
            "popularity": str(shop.train_file),
            "reload_interval": 0.0,
        }
        settings.update(overrides)
        return ServeConfig(**settings)

    return make


@pytest.fixture
def client(make_config: Callable[..., ServeConfig]) -> Iterator[Any]:
    """A TestClient of the default app (memory store, Markov model, popularity, no catalog)."""
    from fastapi.testclient import TestClient

    from sessionrec.serve.app import create_app

    with TestClient(create_app(make_config())) as test_client:
        yield test_client


SERVE_TESTS = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every service test is bounded in time (60 s unless it says otherwise)."""
    for item in items:
        inside = SERVE_TESTS in Path(str(item.fspath)).resolve().parents
        if inside and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in answer["items"]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_until_async(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """:func:`wait_until` inside an event loop, for checks that await (a store's answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ------------------------------------------------------------------ redis
class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port (no persistence unless asked)."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.options = options  # more redis-server options; later ones win
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, 10, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " and SESSIONREC_REQUIRE_SERVICES=1")
        pytest.skip(message)
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------- processes
class ServiceProcess:
    """``python -m sessionrec serve ...`` on a free port, stopped at teardown."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "sessionrec", "-q", "serve", *args]
        command += ["--port", str(self.port), "--log-level", "warning"]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **THREADS_ENV, **(env or {})},
        )

    def wait_ready(self, timeout: float = 150.0) -> ServiceProcess:
        import httpx

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, f"service on {self.url}")
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(list(args), tmp_path / f"service-{len(started)}.log", env)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()
