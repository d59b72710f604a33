"""Where the embedded control plane keeps its files: the overlay home.

``$OVERLAY_HOME`` if set, else the nearest ``.overlay/`` folder at or above the
current directory, else a new ``./.overlay/``. The notebook kernel, the Jupyter
server extension, the gateway and the CLI all call :func:`resolve_home`, so they
find the same store. Pure path logic apart from the final ``mkdir``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_DIRNAME", "HOME_ENV", "find_home", "resolve_home"]

HOME_ENV = "OVERLAY_HOME"
HOME_DIRNAME = ".overlay"


def find_home(start: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """Return the overlay home that applies at ``start`` (default: the current directory).

    Does not create anything; the returned folder may not exist yet.
    """
    env = os.environ if environ is None else environ
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    return here / HOME_DIRNAME


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The overlay home to use, created if missing: ``home`` if given, else :func:`find_home`."""
    path = Path(home).expanduser().resolve() if home is not None else find_home()
    path.mkdir(parents=True, exist_ok=True)
    return path
