"""What one revision costs: raw SQLite vs LocalStore.apply vs an SDK traffic change.

- baseline: the same transaction shape written by hand on a bare sqlite3 connection
  (WAL, synchronous=NORMAL): BEGIN IMMEDIATE, read the pointer, insert a ~1 KB JSON row,
  move the pointer, COMMIT;
- ``LocalStore.apply``: that plus validation of the pydantic document, the change
  summary and the revision bookkeeping;
- ``Overlay.set_traffic``: the whole SDK path: build, validate, resolve every model
  reference in the MLflow registry, apply.
Reported as medians per operation and as ratios to the baseline.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

N = 400


def _median_ms(fn: Callable[[int], object], n: int = N) -> float:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def _baseline(path: Path, doc: dict[str, object]) -> Callable[[int], object]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(
        "CREATE TABLE r(seq INTEGER PRIMARY KEY AUTOINCREMENT, name, revision, document);"
        "CREATE TABLE p(name PRIMARY KEY, revision);"
        "INSERT INTO p VALUES ('o', 0);"
    )
    text = json.dumps(doc)

    def write(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        (rev,) = conn.execute("SELECT revision FROM p WHERE name='o'").fetchone()
        conn.execute("INSERT INTO r(name, revision, document) VALUES ('o', ?, ?)",
                     (rev + 1, text))
        conn.execute("UPDATE p SET revision=? WHERE name='o'", (rev + 1,))
        conn.execute("COMMIT")

    return write


def main() -> list[str]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import overlay_sdk as ov
    from overlay_sdk.spec import parse_overlay
    from overlay_sdk.store import LocalStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    cp = ov.connect(tmp / "home", author="bench")
    x = np.random.default_rng(0).normal(size=(50, 3))
    y = (x[:, 0] > 0).astype(int)
    for c in (1.0, 0.5):
        cp.models.register("m", model=LogisticRegression(C=c).fit(x, y))
    o = cp.overlays.create("bench", host="http://127.0.0.1:8001",
                           routes={"m:1": 90, "m:2": 10}, sticky={"header": "x-user-id"},
                           slo={"timeoutMs": 800})
    doc = o.overlay.to_dict()

    base_ms = _median_ms(_baseline(tmp / "baseline.db", doc))

    store = LocalStore(tmp / "store.db")
    overlay = parse_overlay(doc)
    store_ms = _median_ms(lambda i: store.apply(overlay, message="bench"))

    def sdk(i: int) -> None:
        w = 1 + i % 98
        o.set_traffic({"m:1": 100 - w, "m:2": w})

    sdk_ms = _median_ms(sdk, n=N // 4)
    cp.close()
    store.close()
    return [
        f"raw sqlite transaction (baseline)  {base_ms:7.3f} ms/revision",
        f"LocalStore.apply                   {store_ms:7.3f} ms/revision  "
        f"= {store_ms / base_ms:5.1f} x baseline",
        f"Overlay.set_traffic (SDK, MLflow)  {sdk_ms:7.3f} ms/revision  "
        f"= {sdk_ms / base_ms:5.1f} x baseline, {sdk_ms / store_ms:4.1f} x LocalStore.apply",
    ]
