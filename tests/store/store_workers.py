"""Child-process bodies and shared checks for the LocalStore tests.

Imported by ``test_local_store.py`` and, by name, by the processes it starts with the
``forkserver`` context (so everything here must be importable and picklable: plain
top-level functions taking plain arguments).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from contextlib import closing
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from overlay_sdk.errors import ConflictError
from overlay_sdk.spec import AIOverlay, parse_overlay
from overlay_sdk.store.local import LocalStore

__all__ = [
    "check_whole",
    "contend",
    "dump",
    "make_doc",
    "make_overlay",
    "open_and_create",
    "write_forever",
    "write_paced",
]


def make_doc(
    name: str = "sales-copilot", weights: tuple[int, ...] = (100,), **annotations: str
) -> dict[str, Any]:
    """A valid AIOverlay document routing to copilot:3, copilot:4... with ``weights``."""
    doc: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {
            "host": {"url": "http://127.0.0.1:8001"},
            "routes": [
                {"model": "copilot", "version": str(3 + i), "weight": w}
                for i, w in enumerate(weights)
            ],
        },
    }
    if annotations:
        doc["metadata"]["annotations"] = dict(annotations)
    return doc


def make_overlay(
    name: str = "sales-copilot", weights: tuple[int, ...] = (100,), **annotations: str
) -> AIOverlay:
    return parse_overlay(make_doc(name, weights, **annotations))


def dump(path: Path) -> dict[str, Any]:
    """Every row of every table (sqlite_sequence included) and the schema version."""
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        out: dict[str, Any] = {"user_version": conn.execute("PRAGMA user_version").fetchone()}
        for table in tables:
            out[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
        out["schema"] = conn.execute("SELECT * FROM sqlite_master ORDER BY name").fetchall()
    return out


def check_whole(path: Path) -> int:
    """Assert the file is intact and every pointer matches a whole last revision.

    Reads one snapshot (a single read transaction), so writers may run meanwhile.
    Returns the number of revision rows.
    """
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        pointers = conn.execute("SELECT name, revision, seq, deleted FROM overlays").fetchall()
        for name, number, seq, deleted in pointers:
            row = conn.execute(
                "SELECT name, revision, action, document FROM revisions WHERE seq = ?", (seq,)
            ).fetchone()
            assert row is not None, f"pointer of {name} names missing seq {seq}"
            assert row[:2] == (name, number)
            assert row[2] == ("delete" if deleted else "apply")
            count, top = conn.execute(
                "SELECT COUNT(*), MAX(revision) FROM revisions WHERE name = ?", (name,)
            ).fetchone()
            assert count == top == number, f"{name}: {count} rows, max {top}, pointer {number}"
            if not deleted:
                assert parse_overlay(json.loads(row[3])).name == name
        last = conn.execute(
            "SELECT seq, name, revision, document FROM revisions ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if last is not None:
            seq, name, number, document = last
            assert conn.execute(
                "SELECT revision, seq FROM overlays WHERE name = ?", (name,)
            ).fetchone() == (number, seq), "the last revision is not the current one"
            if document is not None:
                assert parse_overlay(json.loads(document)).name == name
        orphans = conn.execute(
            "SELECT COUNT(*) FROM revisions WHERE name NOT IN (SELECT name FROM overlays)"
        ).fetchone()[0]
        assert orphans == 0
        total = int(conn.execute("SELECT COUNT(*) FROM revisions").fetchone()[0])
        conn.execute("COMMIT")
        return total


# -- child process bodies ------------------------------------------------------------------


def contend(path: str, name: str, worker: int, updates: int, barrier: Barrier) -> None:
    """Read-modify-write ``name`` ``updates`` times, retrying every ConflictError."""
    store = LocalStore(path)
    barrier.wait(timeout=60)
    conflicts = 0
    for counter in range(updates):
        while True:
            current = store.get(name)
            assert current.overlay is not None
            doc = current.overlay.to_dict()
            notes = doc["metadata"]["annotations"]
            total = int(notes["total"]) + 1
            notes.update(writer=str(worker), counter=str(counter), total=str(total))
            first = 1 + (worker + counter) % 99
            doc["spec"]["routes"] = make_doc(weights=(first, 100 - first))["spec"]["routes"]
            try:
                store.apply(
                    parse_overlay(doc),
                    expected_revision=current.revision,
                    author=f"worker-{worker}",
                    message=f"update {counter}",
                )
                break
            except ConflictError:
                conflicts += 1
    store.close()
    print(f"worker {worker}: {updates} updates, {conflicts} conflicts retried")


def write_forever(path: str, names: list[str], ready: Event, in_apply: Any) -> None:
    """Apply and delete as fast as possible until killed.

    ``in_apply`` (a shared byte) is 1 exactly while a store.apply or store.delete call runs.
    """
    store = LocalStore(path)
    rng = random.Random()
    current = {r.name: r.revision for r in store.list()}
    step = 0
    while True:
        name = rng.choice(names)
        expected = current.get(name, 0)
        if expected and rng.random() < 0.1:
            in_apply.value = 1
            store.delete(name, expected_revision=expected, message=f"kill test {step}")
            in_apply.value = 0
            current.pop(name)
        else:
            doc = make_doc(name, (50, 50) if step % 2 else (100,), step=str(step))
            doc["metadata"]["labels"] = {f"k{i}": f"{step}-{i}-" + "x" * 40 for i in range(32)}
            overlay = parse_overlay(doc)
            in_apply.value = 1
            revision = store.apply(overlay, expected_revision=expected)
            in_apply.value = 0
            current[name] = revision.revision
        if step == 0:
            ready.set()
        step += 1


def write_paced(path: str, names: list[str], count: int, go: Event, seed: int) -> None:
    """Write ``count`` revisions over ``names`` with random gaps of 0-10 ms."""
    store = LocalStore(path)
    rng = random.Random(seed)
    current = {r.name: r.revision for r in store.list()}
    go.wait(timeout=60)
    for step in range(count):
        name = names[step % len(names)]
        expected = current.get(name, 0)
        if expected and rng.random() < 0.1:
            store.delete(name, expected_revision=expected)
            current.pop(name)
        else:
            rev = store.apply(make_overlay(name, step=str(step)), expected_revision=expected)
            current[name] = rev.revision
        time.sleep(rng.uniform(0, 0.010))
    store.close()


def open_and_create(path: str, name: str, barrier: Barrier) -> None:
    """Open a (possibly brand new) store at the same moment as others, then create ``name``."""
    barrier.wait(timeout=60)
    store = LocalStore(path)
    store.apply(make_overlay(name), expected_revision=0)
    store.close()
