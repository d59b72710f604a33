"""`DEMO_SMOKE=1 make demo`: JupyterLab, the notebook, a kernel, the control plane, the legacy
app and the gateway answer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_SMOKE": "1", "OVERLAY_HOME": str(tmp_path / "home")}
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    done = subprocess.run(
        ["make", "-C", str(ROOT), "demo", "PORT=0"], env=env, capture_output=True, text=True,
        timeout=580,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for check in ("lab page", "example notebook", "kernel runs the SDK", "control plane",
                  "Acme CRM (the legacy app)", "overlay gateway"):
        assert f"demo smoke: {check}: ok" in out, out[-4000:]
    assert (tmp_path / "home" / "overlays.db").exists()
    assert (tmp_path / "home" / "mlflow.db").exists()
