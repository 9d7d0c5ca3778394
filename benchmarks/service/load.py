"""The load client of the service benchmarks and the processes they start.

An open-loop client (each request due at a fixed time whether or not earlier answers came
back, latency measured from that time: no coordinated omission) and a closed-loop one, each
run from its own process; ``wrk`` for saturation when installed; the service and
``redis-server`` as managed subprocesses; the CPU time of a process tree from ``/proc``.
Used by ``bench_service`` and ``bench_big_catalog``.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

THREADS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------- requests
def build_requests(test_file: Path, n: int, run: str, k: int) -> list[bytes]:
    """``n`` raw HTTP requests: test sessions click by click, 512 visitors interleaved."""
    sessions = [line.split() for line in test_file.read_text().splitlines() if line.split()]
    slots: list[tuple[str, list[str], int] | None] = [None] * 512
    next_session = 0
    out: list[bytes] = []
    while len(out) < n:
        j = len(out) % len(slots)
        if slots[j] is None:
            s = next_session % len(sessions)
            slots[j] = (f"{run}-{next_session}", sessions[s], 0)
            next_session += 1
        sid, clicks, pos = slots[j]  # type: ignore[misc]
        body = json.dumps({"item_id": clicks[pos]}).encode()
        out.append(
            f"POST /v1/sessions/{sid}/events?k={k} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        slots[j] = (sid, clicks, pos + 1) if pos + 1 < len(clicks) else None
    return out


# ------------------------------------------------------------ load client
class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request in flight, Content-Length answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(-1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:") + len(b"content-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


async def _connect(ports: list[int], n: int) -> list[Connection]:
    """``n`` connections, the ``j``-th to ``ports[j % len(ports)]`` (even spread)."""
    loop = asyncio.get_running_loop()
    conns = []
    for j in range(n):
        _, protocol = await loop.create_connection(Connection, HOST, ports[j % len(ports)])
        conns.append(protocol)
    return conns


async def open_loop(
    ports: list[int], requests: list[bytes], rate: float, warmup: float
) -> dict[str, Any]:
    """Send ``requests`` at ``rate`` per second; latencies from each request's due time.

    Request ``i`` goes to ``ports[i % len(ports)]``: round robin over the replicas, as a
    load balancer would spread it. Times come from ``time.perf_counter``: uvloop's
    ``loop.time()`` ticks in milliseconds.
    """
    clock = time.perf_counter
    per_port = max(1, 256 // len(ports))
    idle: list[asyncio.Queue[Connection]] = [asyncio.Queue() for _ in ports]
    for j, conn in enumerate(await _connect(ports, per_port * len(ports))):
        idle[j % len(ports)].put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    completed = 0
    n_warm = int(warmup * rate)
    tasks = set()

    async def fire(i: int, due: float) -> None:
        nonlocal errors, completed
        queue = idle[i % len(ports)]
        conn = await queue.get()
        status = await conn.request(requests[i])
        done = clock()
        completed += 1
        if not conn.closed:
            queue.put_nowait(conn)
        if i >= n_warm:
            latencies.append(done - due)
            if status != 200:
                errors += 1

    t0 = clock() + 0.05
    measured_start = t0 + n_warm / rate
    for i in range(len(requests)):
        due = t0 + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(fire(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    return {**_summary(latencies, errors, clock() - measured_start, rate), "sent": completed}


async def closed_loop(
    ports: list[int], requests: list[bytes], connections: int, duration: float
) -> dict[str, Any]:
    clock = time.perf_counter
    conns = await _connect(ports, max(connections, len(ports)))
    latencies: list[float] = []
    errors = 0
    counter = iter(range(len(requests)))
    deadline = clock() + duration

    async def run(conn: Connection) -> None:
        nonlocal errors
        for i in counter:
            if clock() >= deadline:
                return
            started = clock()
            status = await conn.request(requests[i])
            latencies.append(clock() - started)
            errors += status != 200

    started = clock()
    await asyncio.gather(*(run(c) for c in conns))
    return {**_summary(latencies, errors, clock() - started, None), "sent": len(latencies)}


def _summary(
    latencies: list[float], errors: int, elapsed: float, rate: float | None
) -> dict[str, Any]:
    import numpy as np

    lat = np.asarray(latencies) * 1000.0
    p50, p90, p99 = np.percentile(lat, [50, 90, 99]).tolist() if lat.size else [math.nan] * 3
    return {
        "target": rate,
        "achieved": lat.size / elapsed if elapsed > 0 else 0.0,
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": float(lat.max()) if lat.size else math.nan,
        "n": int(lat.size),
        "errors": errors,
    }


def _load_process(
    conn: Any, mode: str, ports: list[int], test_file: str, args: dict[str, Any]
) -> None:
    """Entry point of the load generator's own process."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    run = f"r{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    if mode == "open":
        n = int(args["rate"] * (args["warmup"] + args["duration"]))
        requests = build_requests(Path(test_file), n, run, args["k"])
        result = asyncio.run(open_loop(ports, requests, args["rate"], args["warmup"]))
    else:
        n = int(args["duration"] * 20_000)
        requests = build_requests(Path(test_file), n, run, args["k"])
        result = asyncio.run(closed_loop(ports, requests, args["connections"], args["duration"]))
    conn.send(result)
    conn.close()


def run_load(mode: str, port: int | list[int], test_file: Path, **args: Any) -> dict[str, Any]:
    """Run one load phase from its own process against one service or several replicas."""
    ports = [port] if isinstance(port, int) else list(port)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_load_process, args=(child, mode, ports, str(test_file), args))
    process.start()
    limit = args.get("warmup", 0) + args["duration"] + 120
    if not parent.poll(limit):
        process.kill()
        raise RuntimeError(f"load process did not finish within {limit}s")
    result: dict[str, Any] = parent.recv()
    process.join(timeout=10)
    return result


# ---------------------------------------------------------------- loadgen
def loadgen_path() -> Path:
    """The shared open-loop click generator (``../shared/tools/loadgen.py``)."""
    from benchmarks.common import SHARED_DATA

    return SHARED_DATA.parent / "tools" / "loadgen.py"


def write_items(train_file: Path, out: Path) -> Path:
    """Every item id of a sessions-txt file, one per line (loadgen's ``--items``)."""
    items = sorted(
        {token for line in train_file.read_text().splitlines() for token in line.split()}
    )
    out.write_text("\n".join(items) + "\n")
    return out


def loadgen_phase(port: int, rate: float, duration: float, items: Path, k: int) -> dict[str, Any]:
    """One open-loop phase with the shared load generator: random items on random live
    sessions of 1-8 clicks (the setup of the issue tracker's service figures)."""
    result = subprocess.run(
        [
            sys.executable,
            str(loadgen_path()),
            *("--url", f"http://{HOST}:{port}", "--rate", str(rate)),
            *("--seconds", str(duration), "--items", str(items), "--k", str(k)),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=True,
        env={**os.environ, **THREADS},
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    errors = sum(n for code, n in out["status"].items() if code != "200")
    return {
        "target": rate,
        "achieved": out["achieved_rps"],
        "p50": out["p50_ms"],
        "p90": out["p90_ms"],
        "p99": out["p99_ms"],
        "max": out["max_ms"],
        "n": out["n"],
        "errors": errors,
        "sent": out["n"],
        "tool": "loadgen",
    }


# ------------------------------------------------------------------- wrk
WRK_LUA = """
local lines = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  i = math.random(#lines)
end
function request()
  i = i % #lines + 1
  local sid, item = lines[i]:match("(%S+) (%S+)")
  return wrk.format("POST", "/v1/sessions/" .. sid .. "/events?k=" .. args_k,
    {["Content-Type"] = "application/json"}, '{"item_id":"' .. item .. '"}')
end
"""


def wrk_saturation(
    port: int, test_file: Path, connections: int, duration: float, k: int
) -> dict[str, Any]:
    """Closed-loop saturation with wrk (C, cheaper than any Python client)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    try:
        sessions = [line.split() for line in test_file.read_text().splitlines() if line.split()]
        with (workdir / "clicks.txt").open("w") as out:
            for s, clicks in enumerate(sessions):
                for item in clicks:
                    out.write(f"wrk{os.getpid()}-{s} {item}\n")
        (workdir / "load.lua").write_text(f"args_k = {k}\n" + WRK_LUA)
        result = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(duration)}s",
                "--latency",
                "-s",
                str(workdir / "load.lua"),
                f"http://{HOST}:{port}",
                "--",
                str(workdir / "clicks.txt"),
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = result.stdout
    rps = float(text.split("Requests/sec:")[1].split()[0])
    sent = int(text.split(" requests in ")[0].split()[-1])
    percentiles = {}
    for line in text.split("Latency Distribution")[1].splitlines()[1:5]:
        pct, value = line.split()
        percentiles[pct] = _wrk_ms(value)
    non2xx = 0
    if "Non-2xx" in text:
        non2xx = int(text.split("Non-2xx or 3xx responses:")[1].split()[0])
    return {
        "target": None,
        "achieved": rps,
        "p50": percentiles.get("50%"),
        "p90": percentiles.get("90%"),
        "p99": percentiles.get("99%"),
        "errors": non2xx,
        "tool": "wrk",
        "sent": sent,
    }


def _wrk_ms(value: str) -> float:
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


# --------------------------------------------------------------- processes
def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB (Linux /proc)."""
    total_kb = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def metrics_text(port: int) -> str:
    """The service's ``/metrics`` page (Prometheus text; the response headers included)."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


def redis_answers(port: int) -> bool:
    """True when a ``redis-server`` answers PING on ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def train_model(name: str, benchmark: Path, output: Path) -> Path:
    """``sessionrec train --model NAME`` with defaults on a benchmark folder, one thread."""
    subprocess.run(
        [
            *(sys.executable, "-m", "sessionrec", "-q", "train", "--model", name),
            *("--benchmark", str(benchmark), "--output", str(output)),
        ],
        check=True,
        env={**os.environ, **THREADS},
        stdout=subprocess.DEVNULL,
    )
    return output


def measure(
    service: Managed | list[Managed], phase: Any, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """Run ``phase(*args, **kwargs)``; add the CPU per request of the service (all its
    replicas) and the load average."""
    services = [service] if isinstance(service, Managed) else service

    def cpu_seconds() -> float:
        return sum(tree_cpu_seconds(s.process.pid) for s in services)

    cpu_before = cpu_seconds()
    result: dict[str, Any] = phase(*args, **kwargs)
    cpu = cpu_seconds() - cpu_before
    answered = result.get("sent") or 0
    result["server_cpu_us"] = 1e6 * cpu / answered if answered else math.nan
    result["loadavg"] = os.getloadavg()[0]
    return result


class Managed:
    """A subprocess stopped (SIGTERM, then SIGKILL) when the benchmark ends."""

    def __init__(
        self, command: list[str], env: dict[str, str] | None = None, workdir: str | None = None
    ) -> None:
        self.workdir = workdir
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="bench-service-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()
        os.unlink(self.log.name)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def redis_command(port: int, workdir: str, durable: bool = False) -> list[str]:
    """``redis-server`` on ``port``; ``durable``: an append-only file, so that a stop and a
    start keep the data (as a production Redis with persistence does)."""
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if durable else []
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        *persistence,
        "--dir",
        workdir,
    ]


def start_redis(durable: bool = False) -> tuple[Managed, str]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    server = Managed(redis_command(port, workdir, durable), workdir=workdir)

    wait_for(lambda: redis_answers(port), 10, "redis-server")
    return server, f"redis://{HOST}:{port}/0"


def start_service(
    model_dir: Path, popularity: Path, store: str, workers: int, extra: tuple[str, ...] = ()
) -> tuple[Managed, int]:
    port = free_port()
    service = Managed(
        [
            sys.executable,
            "-m",
            "sessionrec",  # `sessionrec serve` (serve/cli.py has no entry point of its own)
            "-q",
            "serve",
            str(model_dir),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--store",
            store,
            "--popularity",
            str(popularity),
            "--log-level",
            "warning",
            "--reload-interval",
            "0",
            *extra,
        ],
        env=THREADS,
    )

    def ready() -> bool:
        if service.process.poll() is not None:
            raise RuntimeError("service exited:\n" + service.tail())
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                return b" 200 " in sock.recv(64)
        except OSError:
            return False

    try:
        wait_for(ready, 180, "the service")
    except BaseException:
        print(service.tail(), file=sys.stderr)
        service.stop()
        raise
    return service, port
