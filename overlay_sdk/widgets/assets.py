"""Where the widgets' front-end files are: ``widgets/`` at the top of a source checkout
(an editable install), or ``overlay_sdk/widgets/static/`` in a wheel (copied there at
build time, see ``pyproject.toml``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["asset", "esm"]

_HERE = Path(__file__).resolve().parent


def asset(name: str) -> Path:
    """The path of front-end file ``name`` (``traffic_splitter.js``)."""
    for folder in (_HERE / "static", _HERE.parents[1] / "widgets"):
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"the widget file {name!r} is missing from this installation of "
                            "overlay-sdk: reinstall it (pip install --force-reinstall overlay-sdk)")


def esm(name: str) -> str:
    """Widget module ``name`` as anywidget loads it: the shared DOM helpers
    (``widgets/dom.js``: ``h()``, ``mount()``) followed by the module itself (a module
    loaded from a string cannot import a sibling file)."""
    return asset("dom.js").read_text(encoding="utf-8") + "\n" + asset(name).read_text(
        encoding="utf-8")
