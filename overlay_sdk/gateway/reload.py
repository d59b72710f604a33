"""Hot reload: follow the store and keep the :class:`Directory` the gateway serves from.

A watcher thread follows the store and hands every revision to the event loop, in commit
order. For each revision the :class:`Reloader`:

1. derives its :class:`~overlay_sdk.routing.RoutePlan` along the overlay's stored history
   (so every gateway, restarted or not, routes each key alike): from the previous plan
   as changes arrive, and at a start from the newest plan kept in the status book, on a
   worker thread (the loop keeps serving);
2. loads and health-checks the versions it names that are not loaded yet ("warming"),
   while the previous revision keeps serving (a new overlay passes host traffic at once);
3. swaps in a new directory snapshot and records when, and how long after the commit;
4. drops, after a grace period, the versions no overlay uses any more.

A revision whose versions cannot load leaves the previous one serving; it is retried with
backoff unless retrying cannot help (an unsupported kind, an image without an endpoint).

With ``only`` (``overlay gateway --overlay NAME``, a cluster's gateway of one overlay)
the revisions of every other overlay in the store are ignored. :meth:`Reloader.readiness`
says whether the gateway serves what it should (``/readyz``).

The reloader uses only the :class:`~overlay_sdk.store.Store` reads (``get``, ``list``,
``history``, ``watch``), so any store works: the SQLite one or the Kubernetes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from overlay_sdk import routing
from overlay_sdk.errors import NotFoundError
from overlay_sdk.gateway.dispatch import Active, Directory
from overlay_sdk.gateway.models import ModelPool
from overlay_sdk.gateway.status import StatusBook
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.store import Revision, Store, WatchEvent

__all__ = ["RELEASE_GRACE_S", "Reloader"]

_log = logging.getLogger("overlay_sdk.gateway")
RELEASE_GRACE_S = 30.0  # requests that took the previous snapshot may still call its versions
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 60.0

Record = Callable[..., None]  # record(overlay, revision, state, committed_at=..., ...)


def versions_of(spec: AIOverlaySpec) -> list[str]:
    """``model:version`` keys a spec routes or shadows to."""
    keys = [f"{r.model}:{r.version}" for r in spec.routes]
    if spec.shadow is not None:
        keys.append(f"{spec.shadow.model}:{spec.shadow.version}")
    return keys


class Reloader:
    """Follows ``store`` and keeps :attr:`directory` (see the module docstring).

    ``record`` writes a revision's state to the status book (off the loop);
    ``on_first_serving`` is called when an overlay first serves here; ``on_release`` gets
    the versions still in use after a release. ``cache`` keeps derived plans (read on the
    replay thread) and ``save_plan`` writes one off the loop, so a start replays only the
    revisions after the newest kept plan. ``only``: follow that overlay alone.
    """

    def __init__(self, store: Store, pool: ModelPool, *, record: Record,
                 on_first_serving: Callable[[Active], None],
                 on_release: Callable[[set[str]], None],
                 cache: StatusBook | None = None,
                 save_plan: Callable[[routing.RoutePlan], None] | None = None,
                 only: str | None = None) -> None:
        self.store = store
        self.pool = pool
        self.only = only
        self.started = False  # the store's overlays were listed
        self.initial: dict[str, int] = {}  # the revision of each overlay listed at the start
        self.directory = Directory()
        self.desired: dict[str, int] = {}  # newest revision seen per overlay
        self.serving: dict[str, int] = {}  # revision serving with every version ready
        self.deleted: set[str] = set()
        self._record_state = record
        self._on_first_serving = on_first_serving
        self._on_release = on_release
        self._cache = cache
        self._save_plan = save_plan or (lambda plan: None)
        self._plans: dict[str, routing.RoutePlan] = {}  # plan of each overlay's latest revision
        self._pending: dict[str, list[str]] = {}  # versions of revisions being applied
        self._attempts: dict[str, int] = {}  # failed loads in a row, for the retry backoff
        self._applied = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Apply the store's overlays, then follow it (call on the event loop)."""
        self._loop = asyncio.get_running_loop()
        events = self.store.watch(since=None)  # before list(): nothing falls in between
        for rev in self._listed():
            self.initial[rev.name] = rev.revision
            self.on_revision(rev)
        self.started = True
        self._watcher = threading.Thread(target=self._follow, args=(events,),
                                         name="overlay-watch", daemon=True)
        self._watcher.start()

    async def stop(self) -> None:
        """Stop following (the caller closes the store, which ends the watch)."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def join(self) -> None:
        """Wait for the watcher thread (after the store was closed)."""
        if self._watcher is not None:
            self._watcher.join(timeout=2)

    def _listed(self) -> list[Revision]:
        """The current revisions to serve: every live overlay's, or ``only``'s."""
        if self.only is None:
            return self.store.list()
        try:
            return [self.store.get(self.only)]
        except NotFoundError:
            return []  # not created yet (or deleted): its first revision comes by the watch

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _follow(self, events: Iterator[WatchEvent]) -> None:
        try:
            for event in events:
                if self._stopping.is_set():
                    return
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self.on_revision, event.revision)
        except Exception as err:
            if not self._stopping.is_set():
                _log.error("the gateway stopped following the store: %s", err)

    # -- one revision ------------------------------------------------------------------------

    def warming(self, name: str) -> bool:
        """Whether overlay ``name`` exists but serves nothing yet here."""
        return name in self.desired and name not in self.deleted

    def on_revision(self, rev: Revision) -> None:
        """Take a revision from the store (in commit order, on the loop)."""
        if self.only is not None and rev.name != self.only:
            return  # another overlay's: not served here
        if rev.revision <= self.desired.get(rev.name, 0):
            return  # seen already (the listing and the watch overlap)
        self.desired[rev.name] = rev.revision
        name, spec = rev.name, rev.overlay.spec if rev.overlay is not None else None
        last = self._plans.get(name)
        if spec is None:
            self._plans.pop(name, None)
            self._spawn(self._apply(rev, None))
        elif last is not None and last.revision == rev.revision - 1:
            # the usual case: derive from the previous plan (~1.5 ms)
            current = routing.plan(spec, overlay=name, revision=rev.revision, previous=last)
            self._plans[name] = current
            self._save_plan(current)
            self._spawn(self._apply(rev, current))
        else:  # first sight of an overlay (a start, a re-creation): from its history
            self._spawn(self._replay_then_apply(rev))

    async def _replay_then_apply(self, rev: Revision) -> None:
        loop = asyncio.get_running_loop()
        try:
            current = await loop.run_in_executor(None, self._replay, rev)
        except Exception as err:  # the store failed us: say so, try again
            self._record(rev, "failed", message=f"could not read the history of {rev.name} "
                         f"to derive its routing plan ({err}); retrying in "
                         f"{RETRY_FIRST_S:g} s")
            loop.call_later(RETRY_FIRST_S, self._retry_replay, rev)
            return
        last = self._plans.get(rev.name)
        if current is not None and (last is None or last.revision < current.revision):
            self._plans[rev.name] = current
        await self._apply(rev, current)

    def _retry_replay(self, rev: Revision) -> None:
        if self.desired.get(rev.name) == rev.revision and not self._stopping.is_set():
            self._spawn(self._replay_then_apply(rev))

    def _replay(self, rev: Revision) -> routing.RoutePlan | None:
        """The plan of ``rev`` from the overlay's stored history since its last creation,
        starting from the newest kept plan on the way (off the loop: reads the store)."""
        history = [(r.revision, r.overlay.spec if r.overlay is not None else None)
                   for r in self.store.history(rev.name) if r.revision <= rev.revision]
        deletions = [i for i, (_, spec) in enumerate(history) if spec is None]
        tail = history[deletions[-1] + 1:] if deletions else history
        if not tail:
            return None
        current = self._cache.latest_plan(rev.name, tail[0][0], rev.revision) \
            if self._cache is not None else None
        if current is not None:
            tail = [(n, spec) for n, spec in tail if n > current.revision]
        for number, spec in tail:
            assert spec is not None
            current = routing.plan(spec, overlay=rev.name, revision=number, previous=current)
        if current is not None and self._cache is not None and tail:
            self._cache.save_plan(current)
        return current

    async def _apply(self, rev: Revision, plan: routing.RoutePlan | None) -> None:
        name = rev.name
        if self.desired.get(name) != rev.revision:
            # a newer revision came while this one waited (its history being replayed, a
            # retry): applying it now would undo the newer one, e.g. revive a deleted overlay
            self._record(rev, "superseded")
            return
        if rev.overlay is None or plan is None:
            self.directory = self.directory.without(name)
            self.serving.pop(name, None)
            self.deleted.add(name)
            self._release()
            self._record(rev, "deleted", applied=True)
            return
        self.deleted.discard(name)
        spec = rev.overlay.spec
        keys = versions_of(spec)
        if not self.pool.ready(keys):
            self._record(rev, "warming")
            if name not in self.directory.overlays:
                # a new overlay: its host traffic flows at once; model calls get a clear 503
                # until its versions are loaded and healthy
                self._install(rev, spec, plan)
            self._pending[name] = keys
            try:
                failures = await self.pool.ensure(keys)
            finally:
                if self._pending.get(name) is keys:
                    del self._pending[name]
            if self.desired.get(name) != rev.revision:
                self._record(rev, "superseded")
                return
            if failures:
                self._failed(rev, plan, failures)
                return
        now = self._install(rev, spec, plan)
        if name not in self.serving:
            self._on_first_serving(self.directory.overlays[name])
        self._attempts.pop(name, None)
        self.serving[name] = rev.revision
        self._record(rev, "serving", applied=True, now=now)
        self._release()
        self._applied.set()
        self._applied = asyncio.Event()

    def _failed(self, rev: Revision, plan: routing.RoutePlan, failures: dict[str, str]) -> None:
        """Record why ``rev`` was not applied; retry with backoff unless it cannot work."""
        name = rev.name
        serving = self.serving.get(name)
        still = (f"; revision {serving} keeps serving" if serving is not None
                 else "; host traffic passes through, model calls get 503 until the "
                 "versions load")
        if all(self.pool.permanent(k) for k in failures):
            self._record(rev, "failed", message="; ".join(failures.values()) + still)
            return
        retry = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** self._attempts.get(name, 0))
        self._attempts[name] = self._attempts.get(name, 0) + 1
        self._record(rev, "failed", message="; ".join(failures.values()) + still
                     + f"; retrying in {retry:.0f} s")
        assert self._loop is not None
        self._loop.call_later(retry, self._retry, rev, plan)

    def _install(self, rev: Revision, spec: AIOverlaySpec, plan: routing.RoutePlan
                 ) -> datetime:
        """Swap in a directory where ``rev`` serves its overlay."""
        now = datetime.now(UTC)
        active = Active.of(rev.name, rev.revision, spec, plan, committed_at=rev.created_at,
                           applied_at=now)
        self.directory = self.directory.with_active(active)
        return now

    def _retry(self, rev: Revision, plan: routing.RoutePlan) -> None:
        if self.desired.get(rev.name) == rev.revision and not self._stopping.is_set():
            self._spawn(self._apply(rev, plan))

    def _record(self, rev: Revision, state: str, *, applied: bool = False,
                now: datetime | None = None, message: str = "") -> None:
        if applied:
            now = now or datetime.now(UTC)
            ms = max(0.0, (now - rev.created_at).total_seconds() * 1000)
            self._record_state(rev.name, rev.revision, state, committed_at=rev.created_at,
                               applied_at=now, propagation_ms=ms, message=message)
            if state != "deleted":
                _log.info("%s revision %d serving (%.1f ms after commit)", rev.name,
                          rev.revision, ms)
        else:
            self._record_state(rev.name, rev.revision, state, committed_at=rev.created_at,
                               message=message)
            if state == "failed":
                _log.warning("%s revision %d not applied: %s", rev.name, rev.revision, message)

    # -- releasing versions -----------------------------------------------------------------

    def _release(self) -> None:
        """Drop, after a grace period, the versions no overlay uses any more (requests that
        took the previous snapshot may still be calling them)."""
        if self._loop is not None and not self._stopping.is_set():
            self._loop.call_later(RELEASE_GRACE_S, self._release_now)

    def in_use(self) -> set[str]:
        """Versions the served overlays and the revisions being applied name."""
        keep: set[str] = set()
        for active in self.directory.overlays.values():
            keep.update(active.plan.versions)
            if active.plan.shadow is not None:
                keep.add(active.plan.shadow)
        for pending in self._pending.values():
            keep.update(pending)
        return keep

    def _release_now(self) -> None:
        if self._stopping.is_set():
            return
        keep = self.in_use()
        self.pool.release(keep)
        self._on_release(keep)

    # -- readiness -----------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str, dict[str, dict[str, Any]]]:
        """(ready, why, per overlay its state) for ``/readyz``.

        Ready once every overlay to serve (``only``, else every live overlay) serves,
        with its versions loaded and healthy, the revision it had when the gateway
        started, or a later one. A later revision still loading does not make it unready
        (the one before keeps serving); a deleted ``only`` overlay does (nothing to serve).
        """
        if not self.started:
            return False, "the gateway has not listed the store's overlays yet", {}
        if self.only is not None:
            names = [self.only]
        else:
            names = sorted(n for n in self.desired if n not in self.deleted)
        states: dict[str, dict[str, Any]] = {}
        waiting: list[str] = []
        for name in names:
            desired = self.desired.get(name)
            serving = self.serving.get(name)
            needed = self.initial.get(name, 1)
            if desired is None or name in self.deleted:
                state = "deleted" if name in self.deleted else "absent"
                said = "deleted" if name in self.deleted else "not in the store yet"
                waiting.append(f"overlay {name!r} is {said}: nothing to serve (create it "
                               "with cp.overlays.create or kubectl apply)")
            elif serving is None or serving < needed:
                state = "loading"
                waiting.append(f"overlay {name!r} revision {desired} is not applied yet (its "
                               "model versions are loading or failed: see /_overlay/status)")
            else:
                state = "serving"
            states[name] = {"state": state, "revision": desired, "serving": serving}
        if waiting:
            return False, "; ".join(waiting), states
        return True, (f"serving {', '.join(names)}" if names else "no overlay to serve yet"), \
            states

    # -- waiting -------------------------------------------------------------------------------

    async def wait_applied(self, name: str, revision: int, timeout: float = 30.0) -> Active:
        """Wait until ``name`` serves ``revision`` (or a later one) with its versions ready."""
        deadline = time.monotonic() + timeout
        while True:
            active = self.directory.overlays.get(name)
            if active is not None and self.serving.get(name, 0) >= revision:
                return active
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name} revision {revision} was not applied within "
                                   f"{timeout} s; see o.status() for why")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), min(left, 0.5))

