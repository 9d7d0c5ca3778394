"""Redis commands issued in one event-loop turn, sent to Redis as one pipeline.

At 1,000 clicks/s a worker has a few requests in flight at once, and each one's Redis call
cost, with redis-py, a connection taken from the pool, a ``write`` and a ``read`` of its
own: more CPU than the model's answer (``benchmarks/service/bench_redis_clients.py``).
:class:`CommandBatcher` collects the commands that coroutines issue during one turn of the
event loop and writes them as a single non-transactional pipeline at the end of that turn:
one connection, one write, one read of every reply, however many requests were waiting.
A lone command goes out in the same loop turn it was issued in, so batching adds no
waiting, only saves work when there is more than one. When nothing is in flight, a command
is sent at once by its caller (a batch of one would cost a task hop and a pipeline, about
60 µs, for nothing); the commands issued while it is out wait for the end of the turn
and go together.

Each caller gets its own reply or its own error (a pipeline without ``MULTI`` runs every
command even when one fails). If the whole pipeline fails (Redis unreachable), every
caller of that batch gets the error.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _reply_errors() -> tuple[type[Exception], ...]:
    try:
        from redis.exceptions import ResponseError
    except ImportError:  # pragma: no cover - the store needs redis; the batcher alone not
        return ()
    return (ResponseError,)


_REPLY_ERRORS = _reply_errors()
"""Errors Redis answers to one command (wrong type, NOSCRIPT): that caller's, not the
connection's."""


class CommandBatcher:
    """Send a command at once when none is in flight; the commands issued while some are,
    at the end of the event-loop turn, in one pipeline of ``client``."""

    def __init__(self, client: Any, max_batch: int = 512) -> None:
        self._client = client
        self.max_batch = int(max_batch)
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self.batches = 0
        self.commands = 0
        self.direct = 0

    async def call(self, *args: Any) -> Any:
        """The reply to one command (``"EVALSHA", sha, ...``): sent at once when nothing
        is in flight, else with the other commands of this loop turn."""
        if self._in_flight or self._queue:
            return await self._enqueue(args)
        self._in_flight += 1
        self.direct += 1
        try:
            return await self._client.execute_command(*args)
        finally:
            self._in_flight -= 1

    def _enqueue(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, future))
        if not self._scheduled:
            self._scheduled = True
            # call_soon runs after the callbacks already ready in this turn: every request
            # that reaches Redis in this turn joins the batch.
            loop.call_soon(self._send)
        return future

    def _send(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), self.max_batch):
            task = asyncio.get_running_loop().create_task(
                self._run(queue[start : start + self.max_batch])
            )
            self._tasks.add(task)  # a reference, or the task may be collected mid-flight
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self._in_flight += 1
        try:
            await self._run_batch(batch)
        finally:
            self._in_flight -= 1

    async def _run_batch(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        live = [(args, future) for args, future in batch if not future.done()]
        if not live:  # every caller gave up (timed out) before the turn ended
            return
        self.batches += 1
        self.commands += len(live)
        try:
            if len(live) == 1:  # a pipeline of one costs more than the plain call
                try:
                    replies = [await self._client.execute_command(*live[0][0])]
                except _REPLY_ERRORS as exc:  # the caller's own error, as in a pipeline
                    replies = [exc]
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for args, _ in live:
                        pipe.execute_command(*args)
                    replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # handed to every caller, then re-raised if not an error
            for _, future in live:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:  # cancelled (shutdown): so are its callers
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(live, replies, strict=True):
            if future.done():  # its caller timed out meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def close(self) -> None:
        """Wait for the batches in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
