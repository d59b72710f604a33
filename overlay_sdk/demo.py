"""``make demo``: initialise the embedded control plane and open JupyterLab on ``examples/``.

``python -m overlay_sdk.demo`` creates (or opens) the overlay home, prints what is in
it, starts the sample legacy app (Acme CRM, port 8001) and the overlay gateway (port
8700) in the background, then runs JupyterLab on the examples folder with
``OVERLAY_HOME`` set, so every notebook kernel finds the same store and registry. With
``DEMO_SMOKE=1`` (or ``--smoke``) it starts everything on free ports, checks that
JupyterLab, the example notebook, a kernel, the control plane, the legacy app and the
gateway answer, then stops and exits 0 (a test runs this). Called by the Makefile only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from overlay_sdk.client import connect
from overlay_sdk.errors import OverlayError
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
            if "json" in resp.headers.get("Content-Type", ""):
                return resp.status, json.loads(body) if body else None
            return resp.status, body.decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, None


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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


KERNEL_CHECK = (
    "import overlay_sdk as ov\n"
    "with ov.connect() as cp:\n"
    "    print('control plane at', cp.home, 'overlays:', len(cp.overlays))\n"
)


async def _execute(ws_url: str, code: str, limit: float) -> str:
    """Run ``code`` in a kernel over the server's websocket; return what it printed."""
    from tornado.websocket import websocket_connect

    conn = await asyncio.wait_for(websocket_connect(ws_url), timeout=limit)
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "demo", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False},
    }))
    printed: list[str] = []
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                printed.append(msg["content"]["text"])
            elif kind == "error":
                printed.append("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                break
    finally:
        conn.close()
    return "".join(printed)


def _kernel_check(base: str, token: str, home: Path, limit: float = 90) -> int:
    """Start a kernel, run KERNEL_CHECK in it, shut it down; 200 if it saw ``home``."""
    status, kernel = _request(f"{base}/api/kernels?token={token}", method="POST", timeout=30)
    if not isinstance(kernel, dict):
        return status if status != 201 else 500
    ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel['id']}/channels?token={token}"
    try:
        printed = asyncio.run(_execute(ws_url, KERNEL_CHECK, limit))
    finally:
        _request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE", timeout=30)
    print(f"demo smoke: kernel said: {printed.strip()}")
    return 200 if f"control plane at {home}" in printed else 500


def _control_plane_check(home: Path) -> int:
    """The store and the registry of ``home`` open and answer a query."""
    try:
        with connect(home) as cp:
            overlays, models = cp.overlays.list(), cp.models.list()
    except OverlayError as err:
        print(f"demo smoke: control plane error: {err}")
        return 500
    print(f"demo smoke: control plane has {len(overlays)} overlays, {len(models)} models")
    return 200


@contextlib.contextmanager
def _services(examples: Path, env: dict[str, str], *, crm_port: int, gateway_port: int
              ) -> Iterator[dict[str, str]]:
    """The sample legacy app and the gateway as background processes, stopped on exit."""
    crm_port = crm_port if _port_is_free(crm_port) else _free_port()
    gateway_port = gateway_port if _port_is_free(gateway_port) else _free_port()
    procs = [
        subprocess.Popen([sys.executable, str(examples / "legacy_app" / "app.py"),
                          "--port", str(crm_port)], env=env, stdout=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "overlay_sdk.cli", "gateway", "--port",
                          str(gateway_port), "--log-level", "warning"], env=env),
    ]
    urls = {"Acme CRM (the legacy app)": f"http://127.0.0.1:{crm_port}",
            "overlay gateway": f"http://127.0.0.1:{gateway_port}"}
    try:
        for name, url in urls.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _request(f"{url}/healthz", timeout=2)[0] == 200:
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"{name} did not start at {url}")
                time.sleep(0.2)
            print(f"{name}: {url}")
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


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
        checks["kernel runs the SDK"] = _kernel_check(base, token, home)
        checks["control plane"] = _control_plane_check(home)
        with _services(examples, env, crm_port=_free_port(), gateway_port=_free_port()) as urls:
            for name, url in urls.items():
                checks[name] = _request(f"{url}/healthz")[0]
        for name, code in checks.items():
            print(f"demo smoke: {name}: {'ok' if code in (200, 201) else f'FAILED ({code})'}")
        return 0 if all(code in (200, 201) for code in checks.values()) else 1
    finally:
        proc.send_signal(signal.SIGTERM)
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
    port = args.port if _port_is_free(args.port) else _free_port()
    if port != args.port:
        print(f"port {args.port} is busy; using {port}")
    with _services(examples, env, crm_port=8001, gateway_port=8700):
        print(f"\nOpen http://127.0.0.1:{port}/lab/tree/{FIRST_NOTEBOOK}?token={token}\n")
        lab = subprocess.Popen(_lab_command(examples, port, token), env=env)
        try:
            return lab.wait()
        except KeyboardInterrupt:
            lab.send_signal(signal.SIGINT)
            lab.send_signal(signal.SIGINT)  # JupyterLab asks to confirm the first one
            return lab.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
