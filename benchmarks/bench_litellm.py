"""A chat model's invoke path through the overlay gateway against LiteLLM's proxy (issue 5's
targets: >= 10 x lower added p99, >= 30 x the throughput of LiteLLM).

Set-up (as ``bench_gateway.py`` and ``shared/notes/gateway-speed.md``): the fast fake upstream
of ``gateway_support.py`` (uvloop, minimal HTTP/1.1) answers every request with the same
338-byte ``chat.completion`` JSON with usage; it, the load generator (``wrk``) and this
process run on one core, the proxy under test alone on the other (``taskset``), the other
proxy stopped (SIGSTOP) meanwhile. Measured in the same run, with the same messages:

- ``direct``: ``POST /v1/chat/completions`` to the fake upstream (the baseline);
- ``overlay``: ``POST /_overlay/bench/invoke`` with ``{"inputs": {"messages": [...]}}`` on
  the overlay gateway (``overlay_sdk.gateway.serve``, one process) of a real overlay home:
  an ``openai``-provider version (API key from an environment variable) routed 100 %, its
  endpoint the fake upstream; the gateway validates the messages, builds the chat
  completion request, reads the answer (content, finish reason, token usage), answers
  ``{"outputs": ...}`` and records the call in telemetry (sample rate 1: inputs and output
  kept; SQLite in the overlay home), as it does for any model call. Gateway defaults
  otherwise (a provider version may have 256 calls in flight, ``max_in_flight_remote``);
- ``litellm``: ``POST /v1/chat/completions`` on LiteLLM's proxy (``litellm --config ...
  --num_workers 1``: one uvicorn process; no database, callbacks off, master key set), its
  model mapped to ``openai/<model>`` at the fake upstream. LiteLLM lives in its own virtual
  environment, made on the first run (``litellm_support.py``; ~750 MB, half a minute here);
  without it (no network) only direct and overlay are measured.

Before timing, one request through each proxy must give HTTP 200 and the fake's content.
Figures, per round then the median of ``ROUNDS``:

1. latency at paced rates LiteLLM sustains (its maximum here: 130-150 req/s): ``wrk -t1 -c8``,
   Lua ``delay()`` with exponential gaps (Poisson arrivals); added = proxy - direct per
   round, median;
2. max throughput with 64 connections (``wrk -t1 -c64``);
3. the ratios LiteLLM added p99 / overlay added p99 (target >= 10 x) and overlay
   throughput / LiteLLM throughput (target >= 30 x), PASS or FAIL.

Needs ``wrk`` (``apt-get install -y wrk``). About 5 minutes (plus LiteLLM's install once).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gateway as bg
import gateway_support as gs
import litellm_support as ls

HERE = Path(__file__).resolve().parent
MODEL = "acme-small-1"
KEY_ENV = "OVERLAY_BENCH_OPENAI_KEY"
UPSTREAM_KEY = "sk-bench-upstream-" + "4f9c2a7e1b8d"  # what the proxies send the fake
MASTER_KEY = "sk-bench-master-" + "8e3b1c5d7a2f"  # LiteLLM's; sent to every target alike
MESSAGES = [{"role": "system", "content": "You answer order questions in one sentence."},
            {"role": "user", "content": "Where is order 4471?"}]
OPENAI_BODY = json.dumps({"model": MODEL, "messages": MESSAGES})
INVOKE_BODY = json.dumps({"inputs": {"messages": MESSAGES}})
EXPECTED = json.loads(gs.BODY)["choices"][0]["message"]["content"]
PACED = ((25, 12), (50, 8))  # (req/s, seconds per run)
PACED_CONNS = 8
MAX_CONNS = 64
MAX_S = 5
ROUNDS = 3
P99_TARGET = 10.0
RPS_TARGET = 30.0

_LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
init = function(args)
  math.randomseed(os.time())
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


class GroupProc(bg.Proc):
    """A process started in a session of its own: signals go to its whole group (LiteLLM
    may start helpers)."""

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)


class Bench(bg.Bench):
    """``bench_gateway``'s run (cores, quiet waiting, SIGSTOP of the other proxies), with
    POST bodies for wrk and processes started from any command."""

    def launch(self, name: str, cmd: list[str], *, core: int | None,
               env: dict[str, str] | None = None, health: str | None = None,
               timeout: float = 120) -> bg.Proc:
        """Start ``cmd`` pinned to ``core``: ready at its ``READY <url>`` line, or (with
        ``health``, a URL) once ``GET health`` answers 200."""
        log = self.work / f"{name}.log"
        with open(log, "w") as err:
            popen = subprocess.Popen(
                [*self.taskset(core), *cmd], stdout=err if health else subprocess.PIPE,
                stderr=err, text=True, cwd=self.work, env=env,
                start_new_session=health is not None)
        proc: bg.Proc = (GroupProc if health else bg.Proc)(name, popen, "", log)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        if health is None:
            assert popen.stdout is not None
            ready, _, _ = select.select([popen.stdout], [], [], timeout)
            line = popen.stdout.readline() if ready else ""
            if line.startswith("READY "):
                proc.url = line.split()[1]
                return proc
        else:
            while popen.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if _request(health, "GET", None)[0] == 200:
                        parts = urlsplit(health)
                        proc.url = f"{parts.scheme}://{parts.netloc}"
                        return proc
                time.sleep(0.2)
        proc.stop()
        raise RuntimeError(f"{name} did not start within {timeout} s; its log:\n"
                           + log.read_text()[-3000:])

    def wrk(self, url: str, *, conns: int, seconds: int, delay_ms: float | None = None,
            body: str = "") -> dict[str, float]:
        delay = (f"delay = function() return math.floor(-math.log(1 - math.random()) * "
                 f"{delay_ms} + 0.5) end" if delay_ms else "")
        script = self.work / f"wrk-{abs(hash((url, conns, delay_ms)))}.lua"
        script.write_text(_LUA % {"body": body, "key": MASTER_KEY, "delay": delay})
        cmd = [*self.taskset(self.load_core), "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
               "--timeout", "5s", "-s", str(script), url]
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


class Target:
    """One thing measured: where wrk sends what, and the proxy process (None: direct)."""

    def __init__(self, label: str, url: str, body: str, proc: bg.Proc | None) -> None:
        self.label, self.url, self.body, self.proc = label, url, body, proc
        self.paced: dict[int, list[dict[str, float]]] = {rate: [] for rate, _ in PACED}
        self.peak: list[dict[str, float]] = []


def _request(url: str, method: str, body: str | None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}
        conn.request(method, parts.path, body=body, headers=headers)
        answer = conn.getresponse()
        raw = answer.read()
        with contextlib.suppress(ValueError):
            return answer.status, json.loads(raw or b"null")
        return answer.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_home(home: Path, upstream_url: str) -> tuple[Any, Any, str]:
    """Register the chat version and route the overlay to it: (ControlPlane, Overlay,
    version key)."""
    from overlay_sdk.client import connect

    cp = connect(home, author="bench")
    version = cp.models.register("chat", provider="openai", params={"model": MODEL},
                                 api_key_env=KEY_ENV)
    overlay = cp.overlays.create(bg.OVERLAY, host=upstream_url, routes={str(version): 100},
                                 slo={"timeoutMs": 10_000})
    return cp, overlay, str(version)


def _check(targets: list[Target]) -> str:
    """One request through each target: HTTP 200 and the fake's content, else RuntimeError."""
    for target in targets:
        status, answer = _request(target.url, "POST", target.body)
        try:
            if target.label.startswith("overlay"):
                content = answer["outputs"]["content"]
            else:
                content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if status != 200 or content != EXPECTED:
            raise RuntimeError(f"{target.label} answered HTTP {status}: {str(answer)[:500]}")
    return (f"checked: {', '.join(t.label.split()[0] for t in targets)} each answer HTTP 200 "
            f"with the fake's content {EXPECTED!r}")


def _tree_rss_mb(pid: int) -> float:
    import psutil
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    return sum(float(p.memory_info().rss) for p in procs) / 2**20


def _measure(bench: Bench, targets: list[Target]) -> None:
    for target in targets:  # warm-up: connections, pools, caches, lazy imports
        with bench.alone(target.proc):
            bench.wrk(target.url, conns=MAX_CONNS, seconds=2, body=target.body)
    bench.loads.clear()
    for _ in range(ROUNDS):
        for rate, seconds in PACED:
            delay_ms = PACED_CONNS / rate * 1000
            for target in targets:
                target.paced[rate].append(bench.quiet_wrk(
                    target.url, target.proc, conns=PACED_CONNS, seconds=seconds,
                    delay_ms=delay_ms, body=target.body))
        for target in targets:
            target.peak.append(bench.quiet_wrk(target.url, target.proc, conns=MAX_CONNS,
                                               seconds=MAX_S, body=target.body))


def _med(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _added(target: Target, direct: Target, rate: int, key: str) -> float:
    """proxy - direct per round, then the median; ms."""
    return statistics.median((t[key] - d[key]) / 1000 for t, d in
                             zip(target.paced[rate], direct.paced[rate], strict=True))


def _verdict(value: float, target: float) -> str:
    return f"target >= {target:g} x: {'PASS' if value >= target else 'FAIL'}"


def _report(bench: Bench, targets: list[Target]) -> list[str]:
    direct, ours = targets[0], targets[1]
    litellm = targets[2] if len(targets) > 2 else None
    lines = []
    for n, (rate, seconds) in enumerate(PACED, 1):
        lines.append(f"1.{n} latency at a paced {rate} req/s (wrk -t1 -c{PACED_CONNS}, "
                     f"exponential delay() of mean {PACED_CONNS / rate * 1000:g} ms; "
                     f"{seconds} s x {ROUNDS} rounds, medians; added = proxy - direct per "
                     "round):")
        for t in targets:
            runs = t.paced[rate]
            text = (f"   {t.label:<24} p50 {_med(runs, 'p50') / 1000:6.3f} ms  p99 "
                    f"{_med(runs, 'p99') / 1000:6.3f} ms  max "
                    f"{max(r['max'] for r in runs) / 1000:6.1f} ms  "
                    f"({_med(runs, 'rps'):3.0f} req/s)")
            if t is not direct:
                text += (f"  added +{_added(t, direct, rate, 'p50'):.3f} / "
                         f"+{_added(t, direct, rate, 'p99'):.3f} ms")
            lines.append(text)
        if litellm is not None:
            ratio = (_added(litellm, direct, rate, "p99")
                     / max(_added(ours, direct, rate, "p99"), 1e-3))
            ratio50 = (_added(litellm, direct, rate, "p50")
                       / max(_added(ours, direct, rate, "p50"), 1e-3))
            lines.append(f"   LiteLLM added p99 / overlay added p99 = {ratio:.1f} x "
                         f"({_verdict(ratio, P99_TARGET)}); p50: {ratio50:.1f} x")
    lines.append(f"2. max throughput, one core, {MAX_CONNS} connections (wrk -t1 "
                 f"-c{MAX_CONNS}; {MAX_S} s x {ROUNDS} rounds, medians):")
    for t in targets:
        rps = [r["rps"] for r in t.peak]
        lines.append(f"   {t.label:<24} {statistics.median(rps):7.0f} req/s  p50 "
                     f"{_med(t.peak, 'p50') / 1000:7.2f} ms  (rounds: "
                     f"{', '.join(f'{v:.0f}' for v in rps)})")
    if litellm is not None:
        ratio = _med(ours.peak, "rps") / _med(litellm.peak, "rps")
        lines.append(f"   overlay / LiteLLM throughput = {ratio:.1f} x "
                     f"({_verdict(ratio, RPS_TARGET)})")
    errors = ", ".join(f"{t.label.split()[0]} {sum(r['errors'] for r in all_runs):.0f}"
                       for t in targets
                       for all_runs in [[*t.peak, *(r for v in t.paced.values() for r in v)]])
    lines.append(f"   wrk errors over all runs (non-2xx, socket): {errors}")
    lines.append(f"   other processes' load during the kept runs: median "
                 f"{statistics.median(bench.loads):.2f}, max {max(bench.loads):.2f} cores "
                 f"({bench.redone} runs redone for load > {bg.QUIET_CORES} cores)")
    if max(bench.loads) > bg.QUIET_CORES:
        lines.append(f"   WARNING: {sum(x > bg.QUIET_CORES for x in bench.loads)} of "
                     f"{len(bench.loads)} runs kept with other load above {bg.QUIET_CORES} "
                     "cores (the machine stayed busy): rerun on a quiet machine")
    return lines


def main() -> list[str]:
    started = time.perf_counter()
    if shutil.which("wrk") is None:
        return ["wrk not found: skipped. Install it with `apt-get install -y wrk` (Debian) "
                "and run again."]
    lines: list[str] = []
    litellm_cmd: Path | None = None
    try:
        litellm_cmd, version, install_s = ls.ensure_litellm(
            lambda text: print(f"   {text}", flush=True))
        lines.append(f"LiteLLM {version} (its own venv {ls.venv_dir()}"
                     + (f"; installed in {install_s:.0f} s this run)" if install_s else ")"))
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        lines.append(f"LiteLLM could not be installed ({ls.LITELLM_SPEC}; no network?): "
                     f"LiteLLM skipped, direct and overlay measured only. {err}")
    old_affinity = os.sched_getaffinity(0)
    work = Path(tempfile.mkdtemp(prefix="overlay-bench-litellm-"))
    bench = Bench(work)
    if bench.load_core is not None:
        os.sched_setaffinity(0, {bench.load_core})
        lines.append(f"cores: wrk, the fake upstream and this process on {bench.load_core}; "
                     f"the proxy under test alone on {bench.proxy_core}")
    else:
        lines.append("not pinned (taskset or a second core missing): figures are noisier")
    python = sys.executable
    try:
        upstream = bench.launch("upstream", [python, str(HERE / "gateway_support.py"),
                                             "upstream"], core=bench.load_core)
        home = work / "home"
        cp, overlay, version_key = _make_home(home, upstream.url)
        config = {"endpoints": {version_key: upstream.url + "/v1"}}
        t0 = time.perf_counter()
        gateway = bench.launch(
            "gateway", [python, str(HERE / "litellm_support.py"), "chat-gateway", str(home),
                        json.dumps(config)],
            core=bench.proxy_core, env={**os.environ, KEY_ENV: UPSTREAM_KEY})
        bg._wait_serving(gateway.url, overlay.revision)
        gateway_start = time.perf_counter() - t0
        targets = [
            Target("direct to upstream", upstream.url + "/v1/chat/completions", OPENAI_BODY,
                   None),
            Target("overlay gateway invoke", f"{gateway.url}/_overlay/{bg.OVERLAY}/invoke",
                   INVOKE_BODY, gateway)]
        starts = f"gateway ready {gateway_start:.1f} s after start"
        if litellm_cmd is not None:
            config_file = ls.litellm_config(work / "litellm.yaml", model=MODEL,
                                            api_base=upstream.url + "/v1", api_key=UPSTREAM_KEY)
            port = _free_port()
            t0 = time.perf_counter()
            proxy = bench.launch(
                "litellm", [str(litellm_cmd), "--config", str(config_file), "--host",
                            "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                core=bench.proxy_core, env=ls.litellm_env(MASTER_KEY),
                health=f"http://127.0.0.1:{port}/health/liveliness")
            starts += f", LiteLLM {time.perf_counter() - t0:.1f} s"
            targets.append(Target("LiteLLM proxy", proxy.url + "/v1/chat/completions",
                                  OPENAI_BODY, proxy))
        lines.append(starts)
        lines.append(_check(targets))
        pids = [p.pid for p in bench.procs]
        with contextlib.suppress(Exception):
            import psutil
            for proc in bench.procs:
                pids += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        bench.foreign = bg.Foreign(pids)
        _measure(bench, targets)
        lines.extend(_report(bench, targets))
        rss = ", ".join(f"{t.label.split()[0]} {_tree_rss_mb(t.proc.pid):.0f} MB"
                        for t in targets[1:] if t.proc is not None)
        lines.append(f"RSS at the end: {rss}")
        code, status = _request(gateway.url + "/_overlay/status", "GET", None)
        if code == 200:
            kept = status.get("telemetry", {})
            lines.append(f"gateway telemetry: {kept.get('written')} call records written, "
                         f"{kept.get('dropped')} dropped (LiteLLM: none, callbacks off)")
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
