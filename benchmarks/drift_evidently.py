"""Evidently's data drift preset, for ``bench_drift.py``, in Evidently's own environment.

Evidently 0.7.23 does not import with pandas 3 (``infer_dtype_from_object``), so it lives in
its own virtual environment (``~/.cache/overlay-sdk/evidently-venv``, or
``$OVERLAY_BENCH_EVIDENTLY_VENV``) made on the first run with ``python -m venv`` and pip
(:func:`ensure_evidently`, stdlib only). The benchmark then runs this file with that
environment's python::

    python drift_evidently.py REFERENCE.parquet CURRENT.parquet default|ks

which reads the two frames, times ``Report([DataDriftPreset(...)]).run(...)`` alone (not the
import nor the parquet reads) and prints one JSON line: seconds, the method Evidently chose
per column, and the columns its own per-column drift tests call drifted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

EVIDENTLY_VERSION = "0.7.23"
REQUIREMENTS = [f"evidently=={EVIDENTLY_VERSION}", "pandas<3", "pyarrow"]


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "overlay-sdk" / "evidently-venv"
    return Path(os.environ.get("OVERLAY_BENCH_EVIDENTLY_VENV") or default)


def quiet_env() -> dict[str, str]:
    """Evidently's environment: its usage telemetry off."""
    return {**os.environ, "DO_NOT_TRACK": "1"}


def installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import evidently, pyarrow, pandas; "
                           "print(evidently.__version__)"], capture_output=True, text=True,
                          timeout=300, env=quiet_env(), check=False)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def ensure_evidently(say: Callable[[str], object] = print) -> tuple[Path, float]:
    """(the environment's python, seconds spent installing: 0 when it was there). Makes the
    venv and installs the pinned version when missing; RuntimeError with pip's last lines
    when that fails (no network)."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if installed_version(venv) == EVIDENTLY_VERSION:
        return python, 0.0
    started = time.perf_counter()
    say(f"installing {' '.join(REQUIREMENTS)} into {venv} (once; a minute or two)")
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    log = venv / "install.log"
    with open(log, "w") as out:
        step = [str(python), "-m", "pip", "install", "--progress-bar", "off", *REQUIREMENTS]
        done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False,
                              timeout=1800)
    if done.returncode != 0:
        said = [line[:300] for line in log.read_text().splitlines()
                if not line.startswith("WARNING")]
        raise RuntimeError(f"pip install failed (log {log}): " + " / ".join(said[-3:]))
    version = installed_version(venv)
    if version != EVIDENTLY_VERSION:
        raise RuntimeError(f"{venv} has evidently {version}, not {EVIDENTLY_VERSION}")
    return python, time.perf_counter() - started


def run_preset(python: Path, reference: Path, current: Path, preset: str,
               timeout: float = 900) -> dict[str, object]:
    """Run this file in Evidently's environment; its JSON answer."""
    done = subprocess.run([str(python), __file__, str(reference), str(current), preset],
                          capture_output=True, text=True, timeout=timeout, env=quiet_env(),
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"evidently {preset} failed: {done.stderr.strip()[-500:]}")
    answer: dict[str, object] = json.loads(lines[-1])
    return answer


def _main(reference_path: str, current_path: str, preset: str) -> None:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    chosen = DataDriftPreset() if preset == "default" else DataDriftPreset(method=preset)
    started = time.perf_counter()
    snapshot = Report([chosen], include_tests=True).run(current_data=current,
                                                         reference_data=reference)
    seconds = time.perf_counter() - started
    result = snapshot.dict()
    methods = {}
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("column") is not None:
            methods[config["column"]] = config.get("method")
    drifted = sorted(test["metric_config"]["params"]["column"] for test in result["tests"]
                     if test.get("id") == "drift" and test.get("status") == "FAIL")
    print(json.dumps({"preset": preset, "seconds": seconds, "methods": methods,
                      "drifted": drifted, "pandas": pd.__version__}))


if __name__ == "__main__":
    _main(*sys.argv[1:4])
