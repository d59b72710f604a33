"""The JupyterLab extension as installed: after ``pip install -e '.[test]'`` (``make``),
JupyterLab lists the front-end extension (``jupyter_ext/``) enabled and the Jupyter server
lists ``overlay_sdk.jupyter`` enabled; the wheel carries the prebuilt extension and the
server's auto-enable file as shared data, so ``pip install`` needs no node on the user's
side; the settings schema's defaults satisfy it.

The commands run from the venv of the running interpreter (``.venv/bin``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LABEXT_NAME = "@overlay-sdk/jupyterlab-ext"
LABEXT_SHARE = f"share/jupyter/labextensions/{LABEXT_NAME}"
SERVER_CONFIG = "etc/jupyter/jupyter_server_config.d/overlay_sdk.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def jupyter(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``jupyter ARGS`` from the venv; its stdout and stderr (the lists print to
    stderr), without colour codes."""
    done = subprocess.run([str(BIN / "jupyter"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, f"jupyter {' '.join(args)} failed:\n{done.stderr}"
    return ANSI.sub("", done.stdout + done.stderr)


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_npm_and_python_versions_agree() -> None:
    package = json.loads((ROOT / "jupyter_ext" / "package.json").read_text())
    assert package["name"] == LABEXT_NAME
    assert package["version"] == project_version()
    assert package["jupyterlab"]["outputDir"] == "../overlay_sdk/labextension"


def test_jupyterlab_lists_the_extension_enabled() -> None:
    listing = jupyter("labextension", "list")
    version = re.escape(project_version())
    assert re.search(rf"{re.escape(LABEXT_NAME)} v{version} enabled\s+OK", listing), listing


def test_jupyter_server_lists_the_server_extension_enabled() -> None:
    listing = jupyter("server", "extension", "list")
    assert re.search(r"overlay_sdk\.jupyter\s+enabled", listing), listing
    assert re.search(r"overlay_sdk\.jupyter\s+OK", listing), listing


def test_settings_schema_defaults_are_valid() -> None:
    schema = json.loads((ROOT / "jupyter_ext" / "schema" / "plugin.json").read_text())
    props = schema["properties"]
    assert props["refreshInterval"]["default"] == 10
    assert props["refreshInterval"]["minimum"] == 2
    assert props["controlPlane"]["default"] == ""
    defaults = {key: value["default"] for key, value in props.items()}
    jsonschema.Draft7Validator(schema).validate(defaults)
    with pytest.raises(jsonschema.ValidationError, match="less than the minimum"):
        jsonschema.Draft7Validator(schema).validate({"refreshInterval": 1})


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout (~3 s when the extension is already built, as after
    ``make``; ~15 s from a clean checkout with yarn's cache warm)."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           str(ROOT), "-w", str(out)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("overlay_sdk-*.whl")
    return built


def test_wheel_carries_the_labextension_and_the_server_config(wheel: Path) -> None:
    data = f"overlay_sdk-{project_version()}.data/data"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        ext = f"{data}/{LABEXT_SHARE}"
        for required in ("package.json", "install.json", "static/style.js",
                         f"schemas/{LABEXT_NAME}/plugin.json"):
            assert f"{ext}/{required}" in names, f"{required} missing from {wheel.name}"
        assert any(re.fullmatch(rf"{re.escape(ext)}/static/remoteEntry\.[0-9a-f]+\.js", n)
                   for n in names)
        built = json.loads(archive.read(f"{ext}/package.json"))
        assert built["name"] == LABEXT_NAME
        assert built["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
        install = json.loads(archive.read(f"{ext}/install.json"))
        assert install["packageName"] == "overlay-sdk"
        config = json.loads(archive.read(f"{data}/{SERVER_CONFIG}"))
        assert config == {"ServerApp": {"jpserver_extensions": {"overlay_sdk.jupyter": True}}}
        # shared data only: the build output is not also package data
        assert not [n for n in names if n.startswith("overlay_sdk/labextension/")]
        # the widgets' front-end modules still ride along
        assert "overlay_sdk/widgets/static/dashboard.js" in names


def test_installing_the_wheel_gives_an_enabled_extension(wheel: Path, tmp_path: Path) -> None:
    """What a user's ``pip install`` does with the shared data, into a scratch prefix
    (unpacked here: ``pip install --prefix`` would uninstall the venv's own overlay-sdk):
    JupyterLab finds the prebuilt extension there, enabled, with no build. (``jupyter server
    extension list`` reads only the standard config dirs, so the server config file is
    checked by its place and content in the wheel, above.)"""
    prefix = tmp_path / "prefix"
    data = f"overlay_sdk-{project_version()}.data/data/"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(data) and not name.endswith("/"):
                target = prefix / name.removeprefix(data)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    listing = jupyter("labextension", "list",
                      env={"JUPYTER_PATH": str(prefix / "share" / "jupyter")})
    assert re.search(rf"{re.escape(str(prefix))}.*\n\s+{re.escape(LABEXT_NAME)} "
                     rf"v{re.escape(project_version())} enabled\s+OK \(python, overlay-sdk\)",
                     listing), listing
