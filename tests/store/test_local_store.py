"""LocalStore: revisions, optimistic concurrency, watch, migrations, crash safety.

The ``slow`` tests run real processes against one file (started with the forkserver
context; their bodies live in ``store_workers.py``).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from multiprocessing.context import ForkServerContext
from pathlib import Path

import pytest
import store_workers
from store_contract import StoreContract
from store_workers import check_whole, dump, make_doc, make_overlay

from overlay_sdk.errors import BackendError, ConflictError, NotFoundError, ValidationError
from overlay_sdk.spec import parse_overlay
from overlay_sdk.store import LocalStore, Store, WatchEvent, local
from overlay_sdk.store import __all__ as store_all
from overlay_sdk.store.migrations import MIGRATIONS, Migration, latest_version, migrate

NAME = "sales-copilot"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "overlays.db"


@pytest.fixture
def store(db: Path) -> Iterator[LocalStore]:
    with LocalStore(db) as s:
        yield s


@pytest.fixture(scope="module")
def mp() -> ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["overlay_sdk.store.local", "store_workers"])
    return ctx


class TestLocalStoreContract(StoreContract):
    """The behaviour every store keeps (test_kubernetes_store.py runs the same tests)."""


def _join(processes: list[multiprocessing.process.BaseProcess], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)


# -- the public surface ----------------------------------------------------------------------


def test_exports_are_explicit_and_sorted() -> None:
    assert store_all == sorted(store_all)
    assert set(store_all) == {"Action", "KubernetesStore", "LocalStore", "Revision", "Store",
                              "WatchEvent", "created_revision"}
    import overlay_sdk.store as package

    assert all(hasattr(package, name) for name in store_all)
    assert {n for n in dir(package) if not n.startswith("_") and n[0].isupper()} <= set(store_all)


def test_bad_arguments_are_refused_before_writing(store: LocalStore, db: Path) -> None:
    overlay = parse_overlay(_doc_for_bad_input())
    store.apply(overlay)
    before = dump(db)
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
        store.revision(overlay.name, "1")  # type: ignore[arg-type]
    assert info.value.paths == ["number"]
    doc = {**_doc_for_bad_input(), "metadata": {"name": "x", "namespace": "a"}}
    namespaced = parse_overlay(doc)
    with pytest.raises(ValidationError) as info:
        store.apply(namespaced)
    assert info.value.paths == ["metadata.namespace"]
    assert dump(db) == before


def _doc_for_bad_input() -> dict[str, object]:
    return {
        "metadata": {"name": "bad-input"},
        "spec": {"host": {"url": "http://h"}, "routes": [{"model": "m", "version": "1",
                                                           "weight": 100}]},
    }


def test_local_store_is_a_store_in_wal_mode(store: LocalStore, db: Path) -> None:
    assert isinstance(store, Store)
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert conn.isolation_level is None
    with closing(sqlite3.connect(db)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_in_home_opens_overlays_db(tmp_path: Path) -> None:
    with LocalStore.in_home(tmp_path / "home") as s:
        s.apply(make_overlay())
    assert (tmp_path / "home" / "overlays.db").is_file()


# -- apply, expected_revision, conflicts ---------------------------------------------------


def test_rejected_inputs_leave_every_table_exactly_as_it_was(store: LocalStore, db: Path) -> None:
    store.apply(make_overlay(), expected_revision=0)
    store.apply(make_overlay("other"), expected_revision=0)
    store.delete("other")
    before = dump(db)
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
        assert dump(db) == before


# -- delete, history, revision, list ---------------------------------------------------------


def test_revision_rows_cannot_be_rewritten(store: LocalStore, db: Path) -> None:
    store.apply(make_overlay())
    with closing(sqlite3.connect(db)) as raw:
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            raw.execute("UPDATE revisions SET message = 'rewritten'")
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            raw.execute("DELETE FROM revisions")
        raw.rollback()
    assert store.history(NAME)[0].message == ""


# -- threads, closing, bad files -----------------------------------------------------------


def test_closed_store_refuses_calls_and_stops_watchers(db: Path) -> None:
    s = LocalStore(db)
    events = s.watch(since=0)
    s.apply(make_overlay())
    assert next(events).revision.revision == 1
    s.close()
    assert list(events) == []  # the watcher noticed the close and ended
    with pytest.raises(BackendError, match="closed"):
        s.get(NAME)
    with pytest.raises(BackendError, match="closed"):
        s.apply(make_overlay())


def test_a_forked_child_opens_its_own_connection(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(make_overlay())
    parent_conn = store._conn()
    monkeypatch.setattr(local.os, "getpid", lambda: -1)  # as seen from a forked child
    child_conn = store._conn()
    assert child_conn is not parent_conn
    assert store.apply(make_overlay(weights=(50, 50))).revision == 2
    store.close()  # the child closes only its own connection...
    assert parent_conn.execute("SELECT COUNT(*) FROM revisions").fetchone() == (2,)
    monkeypatch.undo()
    parent_conn.close()  # ...the parent's stays usable until the parent closes it


def test_a_file_that_is_not_sqlite_raises_backend_error(tmp_path: Path) -> None:
    bad = tmp_path / "overlays.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError) as info:
        LocalStore(bad)
    assert str(bad) in str(info.value)


# -- watch --------------------------------------------------------------------------------


# -- migrations ----------------------------------------------------------------------------


def _add_tags(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE revisions ADD COLUMN tags TEXT NOT NULL DEFAULT ''")
    conn.execute("CREATE TABLE tags (name TEXT PRIMARY KEY)")
    conn.execute("INSERT INTO tags SELECT DISTINCT name FROM revisions")


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def test_a_new_file_gets_the_latest_schema_version(db: Path) -> None:
    LocalStore(db).close()
    assert latest_version() == len(MIGRATIONS) == 1
    assert dump(db)["user_version"] == (1,)


def test_migration_runner_moves_forward_and_keeps_data(store: LocalStore, db: Path) -> None:
    store.apply(make_overlay())
    store.apply(make_overlay("other"))
    store.delete(NAME)
    before = dump(db)
    store.close()
    steps = [*MIGRATIONS, Migration(2, "tags", _add_tags)]
    with closing(_raw(db)) as conn:
        assert migrate(conn, steps=steps) == 2
        assert migrate(conn, steps=steps) == 2  # already there: nothing to do
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        rows = conn.execute(
            "SELECT seq, name, revision, action, document, author, created_at, message, "
            "changes, tags FROM revisions ORDER BY seq"
        ).fetchall()
        assert [r[:-1] for r in rows] == before["revisions"]
        assert {r[-1] for r in rows} == {""}
        assert conn.execute("SELECT name FROM tags ORDER BY name").fetchall() == [
            ("other",),
            (NAME,),
        ]
        pointers = conn.execute("SELECT * FROM overlays ORDER BY rowid").fetchall()
        assert pointers == before["overlays"]


def test_migration_runner_upgrades_a_new_file_through_every_step(db: Path) -> None:
    with closing(_raw(db)) as conn:
        assert migrate(conn, steps=[*MIGRATIONS, Migration(2, "tags", _add_tags)]) == 2
        assert conn.execute("SELECT COUNT(*) FROM tags").fetchone() == (0,)


def test_a_failing_migration_step_leaves_the_previous_version(
    store: LocalStore, db: Path
) -> None:
    store.apply(make_overlay())
    store.close()
    before = dump(db)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("SELECT * FROM no_such_table")

    with closing(_raw(db)) as conn, pytest.raises(BackendError) as info:
        migrate(conn, steps=[*MIGRATIONS, Migration(2, "broken", broken)])
    assert "version 2" in str(info.value) and "unchanged at version 1" in str(info.value)
    assert dump(db) == before
    with LocalStore(db) as again:
        assert again.get(NAME).revision == 1


def test_opening_a_file_from_a_newer_sdk_raises_backend_error(store: LocalStore, db: Path) -> None:
    store.apply(make_overlay())
    store.close()
    with closing(_raw(db)) as conn:
        migrate(conn, steps=[*MIGRATIONS, Migration(2, "tags", _add_tags)])
    before = dump(db)
    with pytest.raises(BackendError) as info:
        LocalStore(db)
    text = str(info.value)
    assert "version 2" in text and "up to 1" in text and "upgrade overlay-sdk" in text.lower()
    assert str(db) in text
    assert dump(db) == before


def test_misnumbered_migration_steps_are_refused(db: Path) -> None:
    with closing(_raw(db)) as conn, pytest.raises(BackendError, match="numbered 1, 2, 3"):
        migrate(conn, steps=[*MIGRATIONS, Migration(3, "skips 2", _add_tags)])
    assert dump(db)["user_version"] == (0,)


# -- many processes -------------------------------------------------------------------------


@pytest.mark.slow
def test_processes_open_a_new_file_at_once(mp: ForkServerContext, db: Path) -> None:
    barrier = mp.Barrier(6)
    names = [f"o{i}" for i in range(6)]
    procs = [
        mp.Process(target=store_workers.open_and_create, args=(str(db), n, barrier)) for n in names
    ]
    for p in procs:
        p.start()
    _join(procs)
    with LocalStore(db) as s:
        assert [r.name for r in s.list()] == names
    assert dump(db)["user_version"] == (1,)


@pytest.mark.slow
def test_8_processes_x_200_updates_with_conflict_retries(mp: ForkServerContext, db: Path) -> None:
    workers, updates = 8, 200
    with LocalStore(db) as s:
        s.apply(make_overlay(total="0", writer="init", counter="0"), expected_revision=0)
    barrier = mp.Barrier(workers)
    procs = [
        mp.Process(target=store_workers.contend, args=(str(db), NAME, w, updates, barrier))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    _join(procs)
    with LocalStore(db) as s:
        history = s.history(NAME)
    assert len(history) == 1 + workers * updates  # exactly 1,600 new revisions
    assert [r.revision for r in history] == list(range(1, len(history) + 1))
    done = set()
    for number, rev in enumerate(history, start=1):
        assert rev.overlay is not None
        notes = rev.overlay.metadata.annotations or {}
        assert notes["total"] == str(number - 1), "an update was based on a stale read"
        if number > 1:
            done.add((int(notes["writer"]), int(notes["counter"])))
            assert rev.author == f"worker-{notes['writer']}"
    assert done == {(w, c) for w in range(workers) for c in range(updates)}
    assert check_whole(db) == 1 + workers * updates


@pytest.mark.slow
def test_sigkill_during_applies_never_leaves_a_half_written_revision(
    mp: ForkServerContext, db: Path
) -> None:
    rng = random.Random(1234)
    names = ["alpha", "beta", "gamma"]
    LocalStore(db).close()
    kills_in_apply, kills = 0, 0
    while kills_in_apply < 50:
        assert kills < 300, f"only {kills_in_apply} of {kills} kills landed inside an apply"
        ready, in_apply = mp.Event(), mp.RawValue("b", 0)
        proc = mp.Process(
            target=store_workers.write_forever, args=(str(db), names, ready, in_apply)
        )
        proc.start()
        assert ready.wait(30), "the writer never applied"
        before = check_whole(db)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL
        kills += 1
        kills_in_apply += in_apply.value
        after = check_whole(db)  # integrity_check ok, pointers match whole last revisions
        assert after >= before
        with LocalStore(db) as s:  # and the store accepts new applies
            name = rng.choice(names)
            current = {r.name: r.revision for r in s.list()}.get(name, 0)
            rev = s.apply(make_overlay(name, weights=(30, 70)), expected_revision=current)
            assert s.get(name) == rev
        assert check_whole(db) == after + 1
    print(f"{kills} kills, {kills_in_apply} inside store.apply/delete")


@pytest.mark.slow
def test_watch_in_another_process_sees_every_revision_within_50ms(
    mp: ForkServerContext, db: Path
) -> None:
    count = 200
    names = ["alpha", "beta", "gamma"]
    with LocalStore(db) as s:
        s.apply(make_overlay("alpha"))  # before the watch: must not be delivered
        events = s.watch(timeout=30)
        go = mp.Event()
        writer = mp.Process(target=store_workers.write_paced, args=(str(db), names, count, go, 7))
        writer.start()
        go.set()
        received: list[tuple[WatchEvent, float]] = []
        for event in events:
            received.append((event, time.time()))
            if len(received) == count:
                break
        _join([writer])
        committed = [(e.seq, e.revision) for e in s.watch(since=received[0][0].seq - 1, timeout=0)]
    assert [(e.seq, e.revision) for e, _ in received] == committed[:count]
    assert len(committed) == count  # nothing was written that the watcher did not see
    seqs = [e.seq for e, _ in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == count
    for name in names:
        numbers = [e.revision.revision for e, _ in received if e.revision.name == name]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    lags = sorted(at - e.revision.created_at.timestamp() for e, at in received)
    print(f"watch lag ms: median {lags[count // 2] * 1000:.1f}, max {lags[-1] * 1000:.1f}")
    assert lags[-1] < 0.050
