"""Stopping a command the tests started in its own process."""

from __future__ import annotations

import signal
import subprocess

__all__ = ["terminate"]


def terminate(process: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """SIGTERM ``process`` (as Kubernetes stops a pod), wait up to ``timeout`` seconds for it
    to finish what it runs, SIGKILL it otherwise; its standard error."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return str(err or "")
