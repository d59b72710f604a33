"""``make demo``: initialise the embedded control plane and open JupyterLab on ``examples/``.

``python -m overlay_sdk.demo`` creates (or opens) the overlay home, prints what is
in it, then runs JupyterLab on the examples folder with ``OVERLAY_HOME`` set, so
every notebook kernel finds the same store and registry. With ``DEMO_SMOKE=1`` (or
``--smoke``) it starts everything on a free port, checks that JupyterLab, the example
notebook, a kernel and the control plane answer, then stops and exits 0 (a test runs
this). Called by the Makefile only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from overlay_sdk.client import connect
from overlay_sdk.home import resolve_home

__all__ = ["main"]

FIRST_NOTEBOOK = "01-register-and-route.ipynb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, None


def _lab_command(examples: Path, port: int, token: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        f"--ServerApp.root_dir={examples}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def _wait_until_up(base: str, token: str, proc: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"JupyterLab exited early with code {proc.returncode}")
        try:
            status, _ = _request(f"{base}/api/status?token={token}", timeout=2)
            if status == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"JupyterLab did not answer at {base} within {limit:.0f} s")


def _smoke(examples: Path, home: Path, env: dict[str, str]) -> int:
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(_lab_command(examples, port, token), env=env)
    try:
        _wait_until_up(base, token, proc, limit=120)
        checks = {
            "lab page": _request(f"{base}/lab?token={token}")[0],
            "example notebook": _request(f"{base}/api/contents/{FIRST_NOTEBOOK}?token={token}")[0],
        }
        status, kernel = _request(f"{base}/api/kernels?token={token}", method="POST", timeout=30)
        checks["kernel start"] = status
        if kernel:
            _request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        with connect(home) as cp:
            checks["control plane"] = 200 if cp.overlays.list() is not None else 500
        for name, code in checks.items():
            print(f"demo smoke: {name}: {'ok' if code in (200, 201) else f'FAILED ({code})'}")
        return 0 if all(code in (200, 201) for code in checks.values()) else 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overlay_sdk.demo",
        description="Initialise the embedded control plane and start JupyterLab on examples/.",
    )
    parser.add_argument("--port", type=int, default=8888, help="JupyterLab port (default 8888)")
    parser.add_argument(
        "--examples", type=Path, default=Path("examples"), help="notebook folder to open"
    )
    parser.add_argument(
        "--smoke", action="store_true", default=os.environ.get("DEMO_SMOKE") == "1",
        help="start everything, check it answers, stop (also DEMO_SMOKE=1)",
    )
    args = parser.parse_args(argv)
    examples = args.examples.resolve()
    if not (examples / FIRST_NOTEBOOK).exists():
        print(f"error: {examples / FIRST_NOTEBOOK} not found; run from the repository root",
              file=sys.stderr)
        return 2
    home = resolve_home(os.environ.get("OVERLAY_HOME") or Path.cwd() / ".overlay")
    with connect(home) as cp:
        print(f"overlay home: {home}")
        print(f"overlays: {len(cp.overlays)}; registered models: {len(cp.models.list())}")
    env = {**os.environ, "OVERLAY_HOME": str(home)}
    if args.smoke:
        return _smoke(examples, home, env)
    token = secrets.token_hex(16)
    print(f"\nOpen http://127.0.0.1:{args.port}/lab/tree/{FIRST_NOTEBOOK}?token={token}\n")
    os.execvpe(sys.executable, _lab_command(examples, args.port, token), env)


if __name__ == "__main__":
    raise SystemExit(main())
