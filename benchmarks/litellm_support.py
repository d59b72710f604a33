"""What ``bench_litellm.py`` needs besides the processes of ``gateway_support.py``:

- LiteLLM's proxy in its own virtual environment, made on first use (``python -m venv``,
  then ``pip install 'litellm[proxy]==VERSION'``: ~750 MB, ~25 s here, minutes on a slow
  network; pinned so runs compare. Unpinned, pip's resolver backtracks past the newest
  releases, whose ``[proxy]`` extra needs packages not published: 1.108.7 is what it
  settled on, on 2026-11-26). It lives in ``~/.cache/overlay-sdk/litellm-venv``
  (``OVERLAY_BENCH_LITELLM_VENV`` to put it elsewhere), outside the work tree and never in
  the project's own ``.venv``: LiteLLM's requirements would fight the project's.
- its config: one model name mapped to ``openai/<name>`` at the fake upstream, no database,
  no callbacks, no cost-map download.
- the role ``chat-gateway HOME CONFIG_JSON`` (``python litellm_support.py chat-gateway ...``):
  the overlay gateway of the overlay home ``HOME`` through :func:`overlay_sdk.gateway.serve`,
  like ``gateway_support.py gateway`` but with ``GatewayConfig`` fields from ``CONFIG_JSON``
  (the endpoints here). Prints ``READY <url>`` once it listens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

LITELLM_VERSION = "1.108.7"
LITELLM_SPEC = f"litellm[proxy]=={LITELLM_VERSION}"


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "overlay-sdk" / "litellm-venv"
    return Path(os.environ.get("OVERLAY_BENCH_LITELLM_VENV") or default)


def installed_version(venv: Path) -> str | None:
    """The litellm version in ``venv``, None when it has none (or no venv is there)."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=False, timeout=60)
    return done.stdout.strip() or None if done.returncode == 0 else None


def ensure_litellm(say: object = print) -> tuple[Path, str, float]:
    """(the ``litellm`` command, its version, seconds spent installing: 0 when it was there).
    Makes the venv and installs the pinned version when missing; RuntimeError with pip's
    last lines when that fails (no network, no such version)."""
    assert callable(say)
    venv = venv_dir()
    command = venv / "bin" / "litellm"
    if installed_version(venv) == LITELLM_VERSION and command.exists():
        return command, LITELLM_VERSION, 0.0
    started = time.perf_counter()
    say(f"installing {LITELLM_SPEC} into {venv} (once; ~750 MB, up to a few minutes)")
    if not (venv / "bin" / "python").exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    log = venv / "install.log"
    with open(log, "w") as out:
        steps = ([str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar",
                  "off", LITELLM_SPEC])
        for step in steps:
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False,
                                  timeout=1800)
            if done.returncode != 0:
                said = [line[:300] for line in log.read_text().splitlines()
                        if not line.startswith("WARNING")]
                tail = "\n".join(said[-3:])
                raise RuntimeError(f"`{' '.join(step[2:])}` failed (log {log}):\n{tail}")
    took = time.perf_counter() - started
    version = installed_version(venv)
    if version != LITELLM_VERSION or not command.exists():
        raise RuntimeError(f"{venv} has litellm {version}, not {LITELLM_VERSION}")
    say(f"installed litellm {version} in {took:.0f} s")
    return command, version, took


def litellm_config(path: Path, *, model: str, api_base: str, api_key: str) -> Path:
    """A proxy config: ``model`` -> ``openai/<model>`` at ``api_base``; nothing logged,
    stored or called back (JSON is YAML)."""
    config = {
        "model_list": [{"model_name": model, "litellm_params": {
            "model": f"openai/{model}", "api_base": api_base, "api_key": api_key}}],
        "litellm_settings": {"callbacks": [], "success_callback": [], "failure_callback": [],
                             "service_callback": [], "set_verbose": False,
                             "json_logs": False, "request_timeout": 30, "num_retries": 0},
        "general_settings": {"disable_spend_logs": True, "disable_error_logs": True,
                             "allow_requests_on_db_unavailable": True},
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def litellm_env(master_key: str) -> dict[str, str]:
    """The proxy's environment: its master key, no database, no telemetry, the model cost
    map from the package (not fetched over the network), quiet logs."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_HOST")}
    env.update({"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
                "DISABLE_SCHEMA_UPDATE": "True", "NO_DOCS": "True"})
    return env


def chat_gateway(home: str, config_json: str) -> None:
    from overlay_sdk.client import connect
    from overlay_sdk.gateway import Gateway, GatewayConfig, serve
    from overlay_sdk.store import LocalStore

    cp = connect(home)
    assert isinstance(cp.store, LocalStore)
    config = GatewayConfig(host="127.0.0.1", port=0, telemetry_url=cp.telemetry_url,
                           **json.loads(config_json))

    def started(gw: Gateway) -> None:
        print(f"READY {gw.url}", flush=True)

    serve(LocalStore(cp.store.path), cp.models, cp.home, config, on_start=started)


def main(argv: list[str]) -> int:
    role, *args = argv
    if role != "chat-gateway":
        raise SystemExit(f"unknown role {role!r}: give chat-gateway HOME CONFIG_JSON")
    chat_gateway(*args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
