"""Bounded background lanes for shadow work: one queue and a few workers per model version.

A lane per version isolates versions from each other: a slow shadow version fills only
its own queue, and a forked call to another version is not stuck behind it. ``offer``
never waits: when a lane is full the job is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["Lanes"]

J = TypeVar("J")
CLOSE_S = 2.0
_log = logging.getLogger("overlay_sdk.gateway")


class Lanes(Generic[J]):
    """Per-key bounded queues drained by ``workers`` tasks each running ``handle(job)``."""

    def __init__(self, handle: Callable[[J], Awaitable[None]], *, capacity: int,
                 workers: int) -> None:
        self._handle = handle
        self.capacity = capacity
        self.workers = workers
        self._queues: dict[str, asyncio.Queue[J]] = {}
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self.dropped: dict[str, int] = {}
        self._closed = False

    def offer(self, key: str, job: J) -> bool:
        """Queue ``job`` on lane ``key`` without waiting; False (counted) when it is full."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(maxsize=self.capacity)
            self._tasks[key] = [asyncio.ensure_future(self._work(queue))
                                for _ in range(self.workers)]
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped[key] = self.dropped.get(key, 0) + 1
            return False
        return True

    async def _work(self, queue: asyncio.Queue[J]) -> None:
        while not self._closed:
            job = await queue.get()
            try:
                await self._handle(job)
            except Exception as err:  # one bad job must not stop the lane
                _log.warning("shadow call failed: %s", err)

    @property
    def queued(self) -> int:
        """Jobs waiting in every lane."""
        return sum(q.qsize() for q in self._queues.values())

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def keep(self, keys: Iterable[str]) -> None:
        """Close the lanes not in ``keys`` (their queued jobs are discarded)."""
        wanted = set(keys)
        for key in [k for k in self._queues if k not in wanted]:
            for task in self._tasks.pop(key):
                task.cancel()
            del self._queues[key]

    async def close(self) -> None:
        """Stop every worker."""
        self._closed = True
        tasks = [t for ts in self._tasks.values() for t in ts]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a job that ignores its cancellation cannot hold the stop up
            await asyncio.wait(tasks, timeout=CLOSE_S)
        self._queues.clear()
        self._tasks.clear()
