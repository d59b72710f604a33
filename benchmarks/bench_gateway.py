"""What the overlay gateway costs a host application's traffic (issue 4's targets).

Set-up (as in ``shared/notes/gateway-speed.md``): a fast fake upstream (uvloop, a minimal
HTTP/1.1 protocol answering a 338-byte chat-completion JSON), the load generator (``wrk``)
and this process pinned to one core; the proxy under test alone on the other core
(``taskset``), in its own process. Proxies under test, measured in the same run:

- ``bare``: aiohttp's low-level server + one pooled aiohttp ClientSession, forwarding
  method, path, headers and body (the baseline; ``gateway_support.py bare``);
- ``gateway``: the overlay gateway (``overlay_sdk.gateway.serve``) over a real overlay home:
  two registered sklearn versions (LogisticRegression, 4 named features) loaded for the
  overlay's routes, the overlay's host = the upstream, sticky routing on ``x-user-id``
  (every request is hashed to a version and stamped ``x-overlay-version``), header hygiene,
  telemetry configured. Its garbage collector's passes are counted (``gc.callbacks``).

While one proxy is measured the other is stopped (SIGSTOP), so it cannot steal its core.
The machine is shared: each wrk run waits for other processes' load to fall below
``QUIET_CORES`` and is redone (at most twice) if they disturbed it; the load is reported.
Every wrk request carries one of 1,000 ``x-user-id`` values. Figures:

1. added latency (proxy p50/p99 - direct p50/p99, per round, then the median) at a paced
   500 req/s: ``wrk -t1 -c8`` with a Lua ``delay()`` of mean 16 ms per connection
   (8 / 500 s), drawn from an exponential distribution so arrivals are Poisson. (A fixed
   16 ms keeps the 8 connections in lock-step: the proxy then gets bursts of 8 requests and
   its p50 is ~1 ms for the bare proxy and the gateway alike, a load-generator artefact.)
2. max throughput with 64 connections (``wrk -t1 -c64``), and the ratio gateway/bare;
3. 20,000 requests at 200 concurrency through the gateway (an aiohttp client in this
   process, on the load core): errors (non-2xx or socket) and the gateway's RSS growth;
4. config propagation over 200 ``o.set_traffic(...)`` changes alternating 90/10 and 10/90:
   commit (``revision.created_at``) -> serving as the gateway records it (the status book's
   ``propagation_ms``), and "set_traffic returned -> ``GET /_overlay/status`` shows the new
   revision" by polling every ~1 ms.

1-2 are medians of 3 rounds. Needs ``wrk`` (``apt-get install -y wrk``); without it only 3
and 4 run. Takes about two minutes on a quiet machine, three at most on a busy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "gateway_support.py"
OVERLAY = "bench"
PATH = "/v1/answer"
USERS = 1000
RATE = 500
PACED_CONNS = 8
PACED_S = 8
MAX_CONNS = 64
MAX_S = 4
ROUNDS = 3
SOAK_REQUESTS = 20_000
SOAK_CONCURRENCY = 200
CHANGES = 200
FEATURES = ["amount", "age_days", "items", "discount"]
QUIET_CORES = 0.1  # other processes' load (cores) above which a run counts as disturbed
QUIET_WAIT_S = 10.0
MAX_REDO = 2
PATIENCE_S = 60.0  # at most this long in all spent waiting for quiet and redoing runs

_LUA = """
local reqs = {}
local i = 0
init = function(args)
  math.randomseed(os.time())
  for n = 1, %(users)d do
    reqs[n] = wrk.format(nil, nil, {["x-user-id"] = "user-" .. n})
  end
end
request = function()
  i = i %% %(users)d + 1
  return reqs[i]
end
%(delay)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50": %%d, "p90": %%d, "p99": %%d, ' ..
    '"p999": %%d, "max": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


class Proc:
    """A process under test: its Popen, the URL it listens on, its log file. (A plain class:
    ``benchmarks/run.py`` loads this module outside ``sys.modules``, where @dataclass fails.)"""

    def __init__(self, name: str, popen: subprocess.Popen[str], url: str, log: Path) -> None:
        self.name, self.popen, self.url, self.log = name, popen, url, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def _busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (all cores; steal excluded)."""
    import psutil
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq)


class Foreign:
    """CPU used by processes other than this benchmark's during a window, in cores
    (the machine is shared: other sessions' tests land on either core)."""

    def __init__(self, pids: list[int]) -> None:
        import psutil
        self.procs = [psutil.Process(pid) for pid in pids]
        self.me = psutil.Process()

    def _own_s(self) -> float:
        t = self.me.cpu_times()  # children: wrk, reaped after each run
        total = t.user + t.system + t.children_user + t.children_system
        for proc in self.procs:
            with contextlib.suppress(Exception):
                c = proc.cpu_times()
                total += c.user + c.system
        return float(total)

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[float]]:
        """Yields a list that holds the foreign load (cores) once the block ends."""
        out: list[float] = []
        busy, own, t0 = _busy_s(), self._own_s(), time.perf_counter()
        yield out
        wall = time.perf_counter() - t0
        out.append(max(0.0, (_busy_s() - busy) - (self._own_s() - own)) / wall)

    def wait_quiet(self, limit: float, patience: float) -> float:
        """Wait (up to ``patience`` s) for a 0.5 s window with foreign load <= ``limit``
        cores; returns the last window's load."""
        deadline = time.monotonic() + patience
        while True:
            with self.measure() as load:
                time.sleep(0.5)
            if load[0] <= limit or time.monotonic() > deadline:
                return load[0]


class Bench:
    """One run: the work folder, the cores, the processes started."""

    def __init__(self, work: Path) -> None:
        self.work = work
        cores = sorted(os.sched_getaffinity(0))
        self.pinned = shutil.which("taskset") is not None and len(cores) >= 2
        self.load_core: int | None = cores[0] if self.pinned else None
        self.proxy_core: int | None = cores[1] if self.pinned else None
        self.procs: list[Proc] = []
        self.foreign: Foreign | None = None
        self.redone = 0
        self.loads: list[float] = []
        self.waited = 0.0  # seconds spent waiting for quiet and redoing disturbed runs

    def patience(self) -> float:
        """How long to wait for a quiet machine now (less as PATIENCE_S runs out)."""
        return max(0.0, min(QUIET_WAIT_S, PATIENCE_S - self.waited))

    def wait_quiet(self) -> None:
        assert self.foreign is not None
        began = time.monotonic()
        self.foreign.wait_quiet(QUIET_CORES, patience=self.patience())
        self.waited += max(0.0, time.monotonic() - began - 0.5)  # 0.5 s: the first look

    def taskset(self, core: int | None) -> list[str]:
        return ["taskset", "-c", str(core)] if self.pinned and core is not None else []

    def start(self, role: str, *args: str, core: int | None, timeout: float = 120) -> Proc:
        log = self.work / f"{role}.log"
        cmd = [*self.taskset(core), sys.executable, str(SUPPORT), role, *args]
        with open(log, "w") as err:
            popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                     cwd=self.work)
        proc = Proc(role, popen, "", log)
        self.procs.append(proc)
        assert popen.stdout is not None
        ready, _, _ = select.select([popen.stdout], [], [], timeout)
        line = popen.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            proc.stop()
            raise RuntimeError(f"{role} did not start within {timeout} s; its log:\n"
                               + log.read_text()[-3000:])
        proc.url = line.split()[1]
        return proc

    @contextlib.contextmanager
    def alone(self, proc: Proc | None) -> Iterator[None]:
        """Stop (SIGSTOP) every proxy but ``proc`` for the duration."""
        others = [p for p in self.procs if p is not proc and p.name != "upstream"]
        for other in others:
            other.signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for other in others:
                other.signal(signal.SIGCONT)

    def quiet_wrk(self, url: str, proc: Proc | None, **kwargs: Any) -> dict[str, float]:
        """``wrk`` with ``proc`` alone on its core, on a quiet machine: waits for other
        processes' load to drop, and redoes a run they disturbed (at most twice; the
        least disturbed run is kept)."""
        assert self.foreign is not None
        tries: list[tuple[float, dict[str, float]]] = []
        for attempt in range(1 + MAX_REDO):
            self.wait_quiet()
            began = time.monotonic()
            with self.alone(proc), self.foreign.measure() as load:
                result = self.wrk(url, **kwargs)
            tries.append((load[0], result))
            if load[0] <= QUIET_CORES or self.patience() <= 0 or attempt == MAX_REDO:
                break
            self.redone += 1
            self.waited += time.monotonic() - began
        best_load, best = min(tries, key=lambda t: t[0])
        best["foreign"] = best_load
        self.loads.append(best_load)
        return best

    def wrk(self, url: str, *, conns: int, seconds: int, delay_ms: float | None = None
            ) -> dict[str, float]:
        # Exponential gaps (mean delay_ms, whole ms as wrk takes them): each connection is
        # a Poisson stream, so arrivals spread out. A fixed delay() keeps the connections in
        # lock-step and the proxy gets bursts of `conns` requests at once.
        delay = (f"delay = function() return math.floor(-math.log(1 - math.random()) * "
                 f"{delay_ms} + 0.5) end" if delay_ms else "")
        script = self.work / f"wrk-{conns}-{delay_ms}.lua"
        script.write_text(_LUA % {"users": USERS, "delay": delay})
        cmd = [*self.taskset(self.load_core), "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
               "--timeout", "5s", "-s", str(script), url + PATH]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                              check=False)
        for line in done.stdout.splitlines():
            if line.startswith("WRKJSON "):
                result: dict[str, float] = json.loads(line[len("WRKJSON "):])
                result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
                result["errors"] = sum(result[k] for k in
                                       ("connect", "read", "write", "status", "timeout"))
                return result
        raise RuntimeError(f"wrk gave no figures ({' '.join(cmd)}):\n{done.stdout}\n"
                           f"{done.stderr}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


# -- helpers -------------------------------------------------------------------------------

def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def _serving(status: dict[str, Any], revision: int) -> dict[str, Any] | None:
    """The overlay's status entry if it serves ``revision`` (or later) with every version
    ready, else None."""
    entry = status.get("overlays", {}).get(OVERLAY)
    if entry is None or entry["revision"] < revision or entry.get("ready") is False:
        return None
    return dict(entry)


def _rss_mb(pid: int) -> float:
    import psutil
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _pct(values: list[float], q: float) -> float:
    import numpy as np
    return float(np.percentile(values, q))


def _make_home(home: Path, upstream_url: str) -> tuple[Any, Any]:
    """Register two sklearn versions and create the overlay: (ControlPlane, Overlay)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from overlay_sdk.client import connect

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, len(FEATURES))), columns=FEATURES)
    y = (x["amount"] + x["items"] > 0).astype(int)
    cp = connect(home, author="bench")
    for c in (1.0, 0.1):
        cp.models.register("scorer", model=LogisticRegression(C=c).fit(x, y), reference=x,
                           label=f"C={c}")
    return cp, cp.overlays.create(
        OVERLAY, host=upstream_url, routes={"scorer:1": 50, "scorer:2": 50},
        sticky={"header": "x-user-id"},
        telemetry={"sampleRate": 1.0, "redact": ["email"], "retentionDays": 7})


def _wait_serving(url: str, revision: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            code, status = _get(url, "/_overlay/status")
            entry = _serving(status, revision) if code == 200 else None
            if entry is not None and all(m["state"] == "ready"
                                         for m in status["models"].values()):
                return entry
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not serve {OVERLAY} revision {revision} "
                               f"within {timeout} s")
        time.sleep(0.1)


def _check_forwarding(gateway_url: str) -> str:
    """One request through the gateway to the upstream's /echo: what arrived upstream."""
    headers = {"x-user-id": "user-7", "x-overlay-version": "spoofed"}
    versions = set()
    for _ in range(3):
        code, echoed = _get(gateway_url, "/echo", headers)
        got = [(k.lower(), v) for k, v in echoed] if code == 200 else []
        stamped = [v for k, v in got if k == "x-overlay-version"]
        names = {k for k, _ in got}
        if (len(stamped) != 1 or stamped[0] not in ("scorer:1", "scorer:2")
                or not {"via", "x-forwarded-for"} <= names):
            raise RuntimeError(f"the gateway forwarded unexpected headers (HTTP {code}): {got}")
        versions.add(stamped[0])
    if len(versions) != 1:
        raise RuntimeError(f"user-7 was routed to {versions}: not sticky")
    return (f"checked upstream side: x-overlay-version: {versions.pop()} stamped (client's "
            "spoofed one dropped), sticky on x-user-id, Via and X-Forwarded-For added")


def _gc_stats(path: Path) -> dict[str, list[Any]]:
    """The gateway's garbage collector counters (written every 0.5 s)."""
    time.sleep(0.6)
    return dict(json.loads(path.read_text()))


def _gc_line(before: dict[str, list[Any]], after: dict[str, list[Any]], seconds: float) -> str:
    pauses = after["full_ms"][len(before["full_ms"]):]
    young_ms = sum(after["total_ms"][g] - before["total_ms"][g] for g in (0, 1))
    share = (sum(pauses) + young_ms) / 1000 / seconds * 100
    return (f"GC: {len(pauses)} full collections ({sum(pauses):.0f} ms, longest "
            f"{max(pauses, default=0):.0f} ms), young generations {young_ms:.0f} ms; "
            f"{share:.0f} % of {seconds:.0f} s")


def _idle_cpu_percent(pid: int, seconds: float = 2.0) -> float:
    import psutil
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return float(100 * used / seconds)


# -- 3. many requests at high concurrency ---------------------------------------------------

async def _soak(url: str, pid: int) -> tuple[Counter[str], float, float]:
    """(errors by kind, seconds, peak RSS MB) for SOAK_REQUESTS at SOAK_CONCURRENCY."""
    import aiohttp

    errors: Counter[str] = Counter()
    numbers = itertools.count()
    peak = _rss_mb(pid)
    running = True

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, _rss_mb(pid))
            await asyncio.sleep(0.2)

    connector = aiohttp.TCPConnector(limit=SOAK_CONCURRENCY, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            while (n := next(numbers)) < SOAK_REQUESTS:
                try:
                    async with session.get(url + PATH,
                                           headers={"x-user-id": f"user-{n % USERS}"}) as r:
                        await r.read()
                        if not 200 <= r.status < 300:
                            errors[f"HTTP {r.status}"] += 1
                except (aiohttp.ClientError, OSError, TimeoutError) as err:
                    errors[type(err).__name__] += 1

        sampler = asyncio.ensure_future(sample())
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(SOAK_CONCURRENCY)))
        took = time.perf_counter() - started
        running = False
        await sampler
    return errors, took, max(peak, _rss_mb(pid))


def _run_soak(url: str, pid: int) -> tuple[Counter[str], float, float]:
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_soak(url, pid))


# -- 4. propagation ----------------------------------------------------------------------------

def _propagation(overlay: Any, gateway_url: str, home: Path) -> list[str]:
    from overlay_sdk.gateway.status import StatusBook

    parts = urlsplit(gateway_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    sdk_ms: list[float] = []
    returned_to_seen: list[float] = []
    commit_to_seen: list[float] = []
    seen_prop: list[float] = []
    polls = 0
    first = overlay.revision + 1
    for i in range(CHANGES):
        heavy = 90 if i % 2 == 0 else 10
        t0 = time.perf_counter()
        overlay.set_traffic({"scorer:1": heavy, "scorer:2": 100 - heavy})
        returned = time.perf_counter()
        sdk_ms.append((returned - t0) * 1000)
        target = overlay.revision
        while True:
            conn.request("GET", "/_overlay/status")
            answer = conn.getresponse()
            status = json.loads(answer.read())
            polls += 1
            entry = _serving(status, target)
            if entry is not None:
                seen = time.perf_counter()
                wall = datetime.now(UTC)
                break
            time.sleep(0.0005)
        returned_to_seen.append((seen - returned) * 1000)
        commit_to_seen.append((wall - overlay.info.created_at).total_seconds() * 1000)
        seen_prop.append(float(entry["propagationMs"]))
    conn.close()
    last = overlay.revision
    book = StatusBook(home)
    frame = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the book is written off the event loop
        frame = book.applied(OVERLAY)
        frame = frame[(frame.revision >= first) & (frame.revision <= last)
                      & (frame.state == "serving")]
        if len(frame) == CHANGES:
            break
        time.sleep(0.1)
    booked = [float(v) for v in frame.propagation_ms] if frame is not None else []

    def p(values: list[float]) -> str:
        if not values:
            return "n/a"
        return f"p50 {_pct(values, 50):6.2f} ms  p99 {_pct(values, 99):6.2f} ms"

    return [
        f"4. config propagation, {CHANGES} o.set_traffic() changes (90/10 <-> 10/90), "
        f"revisions {first}-{last}:",
        f"   commit -> serving (status book propagation_ms, {len(booked)} rows)  {p(booked)}",
        f"   commit -> serving (gateway status propagationMs)          {p(seen_prop)}",
        f"   set_traffic returned -> GET /_overlay/status shows it      {p(returned_to_seen)}",
        f"   commit -> GET /_overlay/status shows it                    {p(commit_to_seen)}",
        f"   o.set_traffic() itself (SDK: validate, registry look-ups, commit)  {p(sdk_ms)}",
        f"   ({polls} status polls, ~1 ms apart)",
    ]


# -- 1 and 2 -----------------------------------------------------------------------------------

def _latency_and_throughput(bench: Bench, direct: Proc, bare: Proc, gateway: Proc
                            ) -> list[str]:
    targets = {"direct": (direct.url, None), "bare": (bare.url, bare),
               "gateway": (gateway.url, gateway)}
    for _name, (url, proc) in targets.items():  # warm-up: connections, pools, caches
        with bench.alone(proc):
            bench.wrk(url, conns=MAX_CONNS, seconds=1)
    bench.loads.clear()
    delay_ms = PACED_CONNS / RATE * 1000
    paced: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
    peak: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
    for _ in range(ROUNDS):
        for name, (url, proc) in targets.items():
            paced[name].append(bench.quiet_wrk(url, proc, conns=PACED_CONNS,
                                               seconds=PACED_S, delay_ms=delay_ms))
        for name, (url, proc) in targets.items():
            peak[name].append(bench.quiet_wrk(url, proc, conns=MAX_CONNS, seconds=MAX_S))

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def added(name: str, key: str) -> float:  # per round, then the median; in ms
        return statistics.median((t[key] - d[key]) / 1000
                                 for t, d in zip(paced[name], paced["direct"], strict=True))

    errors = {k: sum(r["errors"] for r in paced[k] + peak[k]) for k in targets}
    lines = [f"1. latency at a paced {RATE} req/s (wrk -t1 -c{PACED_CONNS}, delay() "
             f"{delay_ms:g} ms; {PACED_S} s x {ROUNDS} rounds, medians; added = proxy - direct "
             "per round):"]
    labels = {"direct": "direct to upstream", "bare": "bare aiohttp proxy",
              "gateway": "overlay gateway"}
    for name in targets:
        runs = paced[name]
        text = (f"   {labels[name]:<19} p50 {med(runs, 'p50') / 1000:5.3f} ms  "
                f"p99 {med(runs, 'p99') / 1000:5.3f} ms  p99.9 {med(runs, 'p999') / 1000:5.3f}"
                f" ms  max {max(r['max'] for r in runs) / 1000:5.1f} ms  "
                f"({med(runs, 'rps'):4.0f} req/s)")
        if name != "direct":
            text += f"  added +{added(name, 'p50'):.3f} / +{added(name, 'p99'):.3f} ms"
        lines.append(text)
    g50, g99 = added("gateway", "p50"), added("gateway", "p99")
    b50, b99 = added("bare", "p50"), added("bare", "p99")
    lines.append(f"   gateway added p50 +{g50:.3f} ms (target <= 0.5: "
                 f"{'met' if g50 <= 0.5 else 'MISSED'}), p99 +{g99:.3f} ms (target <= 1.5: "
                 f"{'met' if g99 <= 1.5 else 'MISSED'})")
    r50, r99 = g50 / max(b50, 1e-3), g99 / max(b99, 1e-3)
    lines.append(f"   ratio gateway/bare added latency: p50 {r50:.2f} x, p99 {r99:.2f} x "
                 f"(target <= 1.3 x: {'met' if max(r50, r99) <= 1.3 else 'MISSED'})")
    lines.append(f"2. max throughput, one core, {MAX_CONNS} connections (wrk -t1 "
                 f"-c{MAX_CONNS}; {MAX_S} s x {ROUNDS} rounds, medians):")
    for name in targets:
        rps = [r["rps"] for r in peak[name]]
        lines.append(f"   {labels[name]:<19} {statistics.median(rps):6.0f} req/s  "
                     f"(rounds: {', '.join(f'{v:.0f}' for v in rps)})")
    g, b = med(peak["gateway"], "rps"), med(peak["bare"], "rps")
    lines.append(f"   gateway {g:.0f} req/s (target >= 3,000: {'met' if g >= 3000 else 'MISSED'})"
                 f"; gateway/bare = {g / b:.2f} (target >= 1/1.3 = 0.77: "
                 f"{'met' if g / b >= 1 / 1.3 else 'MISSED'})")
    lines.append(f"   wrk errors over all runs: direct {errors['direct']:.0f}, "
                 f"bare {errors['bare']:.0f}, gateway {errors['gateway']:.0f}")
    lines.append(f"   other processes' load during the kept runs: median "
                 f"{statistics.median(bench.loads):.2f}, max {max(bench.loads):.2f} cores "
                 f"({bench.redone} runs redone for load > {QUIET_CORES} cores)")
    if max(bench.loads) > QUIET_CORES:
        lines.append(f"   WARNING: {sum(x > QUIET_CORES for x in bench.loads)} of "
                     f"{len(bench.loads)} runs kept with other load above {QUIET_CORES} cores "
                     "(the machine stayed busy): rerun 1-2 on a quiet machine")
    return lines


def main() -> list[str]:
    started = time.perf_counter()
    has_wrk = shutil.which("wrk") is not None
    old_affinity = os.sched_getaffinity(0)
    work = Path(tempfile.mkdtemp(prefix="overlay-bench-gateway-"))
    bench = Bench(work)
    lines: list[str] = []
    if not has_wrk:
        lines.append("wrk not found: figures 1-2 skipped. Install it with "
                     "`apt-get install -y wrk` (Debian) and run again.")
    if bench.load_core is not None:
        os.sched_setaffinity(0, {bench.load_core})  # this process is load too (3 and 4)
        lines.append(f"cores: wrk, upstream and this process on {bench.load_core}; "
                     f"proxy under test alone on {bench.proxy_core}")
    else:
        lines.append("not pinned (taskset or a second core missing): figures are noisier")
    try:
        upstream = bench.start("upstream", core=bench.load_core)
        home = work / "home"
        cp, overlay = _make_home(home, upstream.url)
        bare = bench.start("bare", upstream.url, core=bench.proxy_core)
        gc_file = work / "gateway-gc.json"
        gateway = bench.start("gateway", str(home), str(gc_file), core=bench.proxy_core)
        _wait_serving(gateway.url, overlay.revision)
        bench.foreign = Foreign([upstream.pid, bare.pid, gateway.pid])
        lines.append(_check_forwarding(gateway.url))
        rss_start = _rss_mb(gateway.pid)
        lines.append(f"gateway idle: {_idle_cpu_percent(gateway.pid):.1f} % of a core "
                     f"(mostly the store watcher's 5 ms poll), RSS {rss_start:.0f} MB after "
                     "start (2 models loaded)")

        bench.wait_quiet()
        gc_before = _gc_stats(gc_file)
        with bench.alone(gateway), bench.foreign.measure() as soak_load:
            before = _rss_mb(gateway.pid)
            errors, took, peak = _run_soak(gateway.url, gateway.pid)
            after = _rss_mb(gateway.pid)
        gc_soak = _gc_stats(gc_file)
        kinds = ", ".join(f"{k} {v}" for k, v in errors.most_common()) or "none"
        total = sum(errors.values())
        lines.append(f"3. {SOAK_REQUESTS:,} requests at {SOAK_CONCURRENCY} concurrency through "
                     f"the gateway: {total} errors ({kinds}) in {took:.1f} s "
                     f"({SOAK_REQUESTS / took:.0f} req/s, other load {soak_load[0]:.2f} "
                     f"cores); target 0: {'met' if total == 0 else 'MISSED'}")
        lines.append(f"   gateway RSS {before:.1f} MB before, {after:.1f} MB after (peak "
                     f"{peak:.1f} MB): growth {after - before:+.1f} MB (target <= 50: "
                     f"{'met' if after - before <= 50 else 'MISSED'})")
        lines.append("   " + _gc_line(gc_before, gc_soak, took))

        if has_wrk:
            lines.extend(_latency_and_throughput(bench, upstream, bare, gateway))
            gc_wrk = _gc_stats(gc_file)
            busy = 1 + ROUNDS * (PACED_S + MAX_S)
            lines.append("   gateway " + _gc_line(gc_soak, gc_wrk, busy) + " (its wrk runs)")
        bench.wait_quiet()
        with bench.foreign.measure() as prop_load:
            lines.extend(_propagation(overlay, gateway.url, home))
        lines.append(f"   (other processes' load meanwhile {prop_load[0]:.2f} cores)")
        lines.append(f"gateway RSS at the end: {_rss_mb(gateway.pid):.1f} MB "
                     f"({_rss_mb(gateway.pid) - rss_start:+.1f} MB since start)")
        cp.close()
    finally:
        bench.close()
        os.sched_setaffinity(0, old_affinity)
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"(whole benchmark {time.perf_counter() - started:.0f} s)")
    return lines


if __name__ == "__main__":
    for out in main():
        print(out, flush=True)
