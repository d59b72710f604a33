"""The behaviour every ``Store`` keeps (see :mod:`overlay_sdk.store.base`), as tests that
any backend's test module runs by subclassing :class:`StoreContract`::

    class TestKubernetesStoreContract(StoreContract):
        @pytest.fixture
        def store(self, cluster): ...      # a fresh, empty store; closed by the fixture

Only the public protocol is used here (no files, tables or API objects), so the same tests
hold for the embedded SQLite store and the Kubernetes store. Backend-specific behaviour
(storage layout, crash safety, namespaces) stays in each backend's own test module.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from store_workers import make_doc, make_overlay

from overlay_sdk.errors import ConflictError, NotFoundError, ValidationError
from overlay_sdk.spec import parse_overlay
from overlay_sdk.store import Revision, Store, WatchEvent, created_revision

__all__ = ["NAME", "StoreContract", "snapshot"]

NAME = "sales-copilot"


def snapshot(store: Store, *names: str) -> tuple[Any, ...]:
    """What a store holds for ``names``: its list and each history (NotFound as None)."""
    histories = []
    for name in names:
        try:
            histories.append(store.history(name))
        except NotFoundError:
            histories.append(None)
    return (store.list(), histories)


def _bad_input_doc() -> dict[str, Any]:
    return {
        "metadata": {"name": "bad-input"},
        "spec": {"host": {"url": "http://h"},
                 "routes": [{"model": "m", "version": "1", "weight": 100}]},
    }


class StoreContract:
    """Tests every Store passes; a subclass provides the ``store`` fixture (fresh, empty)."""

    # -- the protocol ------------------------------------------------------------------------

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    @pytest.mark.parametrize("name", [None, "", 5, ["a"]])
    def test_names_must_be_strings(self, store: Store, name: object) -> None:
        store.apply(parse_overlay(_bad_input_doc()))
        for call in (store.get, store.history, store.delete, lambda n: store.revision(n, 1)):
            with pytest.raises(ValidationError) as info:
                call(name)  # type: ignore[operator]
            assert info.value.paths == ["name"]

    def test_bad_arguments_are_refused_before_writing(self, store: Store) -> None:
        overlay = parse_overlay(_bad_input_doc())
        store.apply(overlay)
        before = snapshot(store, overlay.name)
        bad_calls = [
            ({"expected_revision": "1"}, "expected_revision"),
            ({"expected_revision": True}, "expected_revision"),
            ({"expected_revision": -1}, "expected_revision"),
            ({"author": 5}, "author"),
            ({"message": None}, "message"),
        ]
        for kwargs, path in bad_calls:
            with pytest.raises(ValidationError) as info:
                store.apply(overlay, **kwargs)  # type: ignore[arg-type]
            assert info.value.paths == [path]
            with pytest.raises(ValidationError) as info:
                store.delete(overlay.name, **kwargs)  # type: ignore[arg-type]
            assert info.value.paths == [path]
        with pytest.raises(ValidationError) as info:
            store.revision(overlay.name, "1")  # type: ignore[arg-type]
        assert info.value.paths == ["number"]
        with pytest.raises(ValidationError) as info:
            store.apply(make_doc())  # type: ignore[arg-type]
        assert info.value.paths == ["overlay"]
        for kwargs, path in [({"since": -1}, "since"), ({"since": "0"}, "since"),
                             ({"timeout": -1}, "timeout"), ({"timeout": True}, "timeout")]:
            with pytest.raises(ValidationError) as info:
                store.watch(**kwargs)  # type: ignore[arg-type]
            assert info.value.paths == [path]
        assert snapshot(store, overlay.name) == before

    # -- apply, expected_revision, conflicts -----------------------------------------------

    def test_create_with_expected_zero_then_second_create_conflicts(self, store: Store) -> None:
        rev = store.apply(make_overlay(), expected_revision=0, message="first")
        assert (rev.name, rev.revision, rev.action, rev.message) == (NAME, 1, "apply", "first")
        with pytest.raises(ConflictError) as info:
            store.apply(make_overlay(weights=(50, 50)), expected_revision=0)
        assert (info.value.expected, info.value.current) == (0, 1)
        text = str(info.value)
        assert NAME in text and "already exists" in text and "retry" in text
        assert [r.revision for r in store.history(NAME)] == [1]

    def test_stale_expected_revision_conflicts_and_leaves_history_unchanged(
        self, store: Store
    ) -> None:
        store.apply(make_overlay(), expected_revision=0)
        store.apply(make_overlay(weights=(90, 10)), expected_revision=1)
        before = snapshot(store, NAME)
        with pytest.raises(ConflictError) as info:
            store.apply(make_overlay(weights=(80, 20)), expected_revision=1)
        err = info.value
        assert (err.expected, err.current) == (1, 2)
        text = str(err)
        assert NAME in text and "expected revision 1" in text and "current revision 2" in text
        assert "re-read" in text and "retry" in text
        with pytest.raises(ConflictError) as info:
            store.delete(NAME, expected_revision=1)
        assert (info.value.expected, info.value.current) == (1, 2)
        assert snapshot(store, NAME) == before

    def test_expected_none_skips_the_check(self, store: Store) -> None:
        store.apply(make_overlay())
        assert store.apply(make_overlay(weights=(90, 10))).revision == 2

    def test_expected_revision_on_missing_overlay_conflicts(self, store: Store) -> None:
        with pytest.raises(ConflictError) as info:
            store.apply(make_overlay(), expected_revision=3)
        assert (info.value.expected, info.value.current) == (3, None)
        assert "does not exist" in str(info.value)
        with pytest.raises(NotFoundError):
            store.history(NAME)

    def test_rejected_inputs_leave_the_store_as_it_was(self, store: Store) -> None:
        store.apply(make_overlay(), expected_revision=0)
        store.apply(make_overlay("other"), expected_revision=0)
        store.delete("other")
        before = snapshot(store, NAME, "other", "never-was")
        rejected = [
            lambda: store.apply(make_overlay(weights=(1, 99)), expected_revision=0),
            lambda: store.apply(make_overlay(weights=(1, 99)), expected_revision=7),
            lambda: store.apply(make_overlay("other"), expected_revision=3),
            lambda: store.delete(NAME, expected_revision=9),
            lambda: store.delete("other"),
            lambda: store.delete("never-was"),
            lambda: store.apply(make_doc()),  # type: ignore[arg-type]
        ]
        for attempt in rejected:
            with pytest.raises((ConflictError, NotFoundError, ValidationError)):
                attempt()
            assert snapshot(store, NAME, "other", "never-was") == before

    def test_apply_returns_and_get_reads_back_the_same_revision(self, store: Store) -> None:
        overlay = make_overlay(weights=(95, 5), team="crm")
        rev = store.apply(overlay, author="ada", message="canary copilot:4 at 5%")
        got = store.get(NAME)
        assert got == rev
        assert got.overlay == overlay
        assert got.author == "ada" and got.summary.startswith("canary copilot:4 at 5%; created")

    def test_author_defaults_to_env_then_login_name(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OVERLAY_AUTHOR", "grace")
        assert store.apply(make_overlay()).author == "grace"
        monkeypatch.delenv("OVERLAY_AUTHOR")
        monkeypatch.setenv("LOGNAME", "linus")
        assert store.apply(make_overlay(weights=(50, 50))).author == "linus"
        assert store.apply(make_overlay(), author="explicit").author == "explicit"

    def test_timestamps_are_timezone_aware_utc_and_ordered(self, store: Store) -> None:
        for weights in [(100,), (50, 50), (10, 90)]:
            store.apply(make_overlay(weights=weights))
        history = store.history(NAME)
        for rev in history:
            assert rev.created_at.tzinfo == UTC
            assert rev.created_at.utcoffset() == timedelta(0)
        stamps = [r.created_at for r in history]
        assert stamps == sorted(stamps)
        assert store.get(NAME).created_at == history[-1].created_at

    def test_changes_summary_is_filled(self, store: Store) -> None:
        store.apply(make_overlay())
        store.apply(make_overlay(weights=(95, 5)))
        store.delete(NAME)
        store.apply(make_overlay(weights=(60, 40)))
        assert [r.changes for r in store.history(NAME)] == [
            "created: mode passthrough, routes copilot:3 100",
            "routes copilot:3 100->95, +copilot:4 5",
            "deleted",
            "created: mode passthrough, routes copilot:3 60, copilot:4 40",
        ]

    # -- delete, history, revision, list ---------------------------------------------------

    def test_delete_writes_a_tombstone_and_get_raises_not_found(self, store: Store) -> None:
        store.apply(make_overlay(), expected_revision=0)
        tomb = store.delete(NAME, expected_revision=1, message="retired", author="ops")
        assert (tomb.revision, tomb.action, tomb.overlay) == (2, "delete", None)
        assert (tomb.message, tomb.author, tomb.changes) == ("retired", "ops", "deleted")
        with pytest.raises(NotFoundError) as info:
            store.get(NAME)
        assert NAME in str(info.value) and "deleted at revision 2" in str(info.value)
        with pytest.raises(NotFoundError, match="nothing to delete"):
            store.delete(NAME)
        with pytest.raises(NotFoundError, match="never-was"):
            store.get("never-was")
        assert store.history(NAME)[-1] == tomb
        assert store.list() == []

    def test_reapplying_a_deleted_overlay_continues_numbering(self, store: Store) -> None:
        store.apply(make_overlay(), expected_revision=0)
        store.delete(NAME)
        with pytest.raises(ConflictError) as info:  # a tombstone is not a live revision
            store.apply(make_overlay(), expected_revision=2)
        assert info.value.current is None and "deleted at revision 2" in str(info.value)
        rev = store.apply(make_overlay(weights=(50, 50)), expected_revision=0)
        assert rev.revision == 3
        history = store.history(NAME)
        assert [(r.revision, r.action) for r in history] == [(1, "apply"), (2, "delete"),
                                                            (3, "apply")]
        assert store.get(NAME) == rev
        assert created_revision(history) == 3

    def test_names_lists_every_overlay_with_a_history(self, store: Store) -> None:
        assert store.names() == []
        for name in ["zeta", "alpha", "gone"]:
            store.apply(make_overlay(name))
        store.delete("gone")
        assert store.names() == ["alpha", "gone", "zeta"]

    def test_history_is_oldest_first(self, store: Store) -> None:
        for w in [(100,), (90, 10), (80, 20), (70, 30)]:
            store.apply(make_overlay(weights=w))
        history = store.history(NAME)
        assert [r.revision for r in history] == [1, 2, 3, 4]
        assert [r.overlay.spec.routes[0].weight for r in history if r.overlay] == [
            100, 90, 80, 70]
        with pytest.raises(NotFoundError, match="'nope' has no history"):
            store.history("nope")

    def test_revision_by_number(self, store: Store) -> None:
        store.apply(make_overlay())
        second = store.apply(make_overlay(weights=(90, 10)))
        store.apply(make_overlay(weights=(80, 20)))
        assert store.revision(NAME, 2) == second
        with pytest.raises(NotFoundError) as info:
            store.revision(NAME, 4)
        assert NAME in str(info.value) and "1..3" in str(info.value)
        with pytest.raises(NotFoundError, match="never created"):
            store.revision("nope", 1)

    def test_list_is_sorted_by_name_and_skips_deleted(self, store: Store) -> None:
        for name in ["zeta", "alpha", "mid", "gone"]:
            store.apply(make_overlay(name))
        store.apply(make_overlay("mid", weights=(50, 50)))
        store.delete("gone")
        listed = store.list()
        assert [r.name for r in listed] == ["alpha", "mid", "zeta"]
        assert [r.revision for r in listed] == [1, 2, 1]
        assert all(isinstance(r, Revision) and r.overlay is not None for r in listed)

    def test_threads_share_one_store(self, store: Store) -> None:
        store.apply(make_overlay(), expected_revision=0)
        errors: list[BaseException] = []
        threads_n, updates = 3, 6

        def worker(n: int) -> None:
            try:
                for i in range(updates):
                    while True:
                        current = store.get(NAME)
                        try:
                            store.apply(make_overlay(thread=str(n), i=str(i)),
                                        expected_revision=current.revision)
                            break
                        except ConflictError:
                            pass
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        history = store.history(NAME)
        assert [r.revision for r in history] == list(range(1, 2 + threads_n * updates))
        done = {tuple(sorted((r.overlay.metadata.annotations or {}).items()))
                for r in history[1:] if r.overlay}
        assert len(done) == threads_n * updates  # every update landed exactly once

    # -- watch ---------------------------------------------------------------------------

    def test_watch_from_zero_replays_every_revision_in_commit_order(self, store: Store) -> None:
        store.apply(make_overlay("b"))
        store.apply(make_overlay("a"))
        store.apply(make_overlay("b", weights=(50, 50)))
        store.delete("a")
        events = list(store.watch(since=0, timeout=0.05))
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert len({e.seq for e in events}) == 4
        assert [(e.revision.name, e.revision.revision) for e in events] == [
            ("b", 1), ("a", 1), ("b", 2), ("a", 2)]
        assert events[-1].revision.overlay is None
        assert [e.revision for e in events if e.revision.name == "b"] == store.history("b")
        later = list(store.watch(since=events[1].seq, timeout=0.05))
        assert [e.seq for e in later] == [e.seq for e in events[2:]]

    def test_watch_since_none_starts_at_the_call(self, store: Store) -> None:
        store.apply(make_overlay())
        events = store.watch(timeout=0.3)  # "now" is the call, not the first next()
        store.apply(make_overlay(weights=(50, 50)))
        assert [e.revision.revision for e in events] == [2]

    def test_watch_times_out_without_events(self, store: Store) -> None:
        start = time.monotonic()
        assert list(store.watch(timeout=0.1)) == []
        assert 0.09 <= time.monotonic() - start < 2

    def test_watch_in_a_thread_sees_writes_from_another_thread(self, store: Store) -> None:
        received: list[WatchEvent] = []
        events = store.watch(timeout=5)
        count = 15

        def follow() -> None:
            for event in events:
                received.append(event)
                if len(received) == count:
                    return

        t = threading.Thread(target=follow)
        t.start()
        for i in range(count):
            store.apply(make_overlay(f"o{i % 3}", i=str(i)))
        t.join(10)
        assert not t.is_alive()
        assert [e.revision.overlay.metadata.annotations for e in received
                if e.revision.overlay] == [{"i": str(i)} for i in range(count)]

    # -- copying histories between stores (overlay migrate) ----------------------------------

    def _source_history(self) -> list[Revision]:
        """A history as another store would hold it: old times, other authors, a tombstone."""
        t0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        docs = [make_overlay(weights=(100,)), make_overlay(weights=(90, 10)), None,
                make_overlay(weights=(50, 50))]
        out = []
        for i, overlay in enumerate(docs, start=1):
            out.append(Revision(
                name=NAME, revision=i, action="apply" if overlay else "delete",
                overlay=overlay, author=f"author-{i}", created_at=t0 + timedelta(days=i),
                message=f"message {i}", changes=f"changes {i}",
            ))
        return out

    def test_import_revision_copies_history_verbatim_and_is_idempotent(
        self, store: Store
    ) -> None:
        source = self._source_history()
        assert [store.import_revision(r) for r in source] == [True] * 4
        assert store.history(NAME) == source
        assert store.get(NAME) == source[-1]
        assert [store.import_revision(r) for r in source] == [False] * 4  # a repeated copy
        assert store.history(NAME) == source
        nxt = store.apply(make_overlay(weights=(40, 60)), expected_revision=4)
        assert nxt.revision == 5  # numbering continues after the copy

    def test_import_revision_replays_through_watch(self, store: Store) -> None:
        source = self._source_history()
        for r in source:
            store.import_revision(r)
        seen = [e.revision for e in store.watch(since=0, timeout=0.5)]
        assert seen == source

    def test_import_revision_refuses_gaps_and_rewrites(self, store: Store) -> None:
        first, second, tomb, _ = self._source_history()
        with pytest.raises(ConflictError, match="its last revision is none"):
            store.import_revision(second)
        with pytest.raises(NotFoundError):
            store.history(NAME)  # nothing written
        store.import_revision(first)
        with pytest.raises(ConflictError, match="already has a different revision 1"):
            store.import_revision(replace(first, message="another story"))
        with pytest.raises(ConflictError, match="cannot take revision 3"):
            store.import_revision(tomb)
        store.import_revision(second)
        store.import_revision(tomb)
        with pytest.raises(ConflictError, match="not live"):
            store.import_revision(replace(tomb, revision=4))
        assert [r.revision for r in store.history(NAME)] == [1, 2, 3]

    def test_import_revision_checks_its_input(self, store: Store) -> None:
        first = self._source_history()[0]
        with pytest.raises(ValidationError, match="revision"):
            store.import_revision({"name": NAME})  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="created_at"):
            store.import_revision(replace(first, created_at=datetime(2025, 1, 1)))
        with pytest.raises(ValidationError, match=r"revision\.overlay"):
            store.import_revision(replace(first, action="delete"))
        with pytest.raises(NotFoundError):
            store.history(NAME)
