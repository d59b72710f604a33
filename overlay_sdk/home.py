"""Where the embedded control plane keeps its files: the overlay home.

``$OVERLAY_HOME`` if set, else the nearest ``.overlay/`` folder at or above the
current directory, else a new ``./.overlay/``. The notebook kernel, the Jupyter
server extension, the gateway and the CLI all call :func:`resolve_home`, so they
find the same store. Pure path logic apart from the final ``mkdir``.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

__all__ = ["AUTHOR_ENV", "HOME_DIRNAME", "HOME_ENV", "default_author", "find_home",
           "resolve_home"]

HOME_ENV = "OVERLAY_HOME"
HOME_DIRNAME = ".overlay"
AUTHOR_ENV = "OVERLAY_AUTHOR"


def default_author() -> str:
    """Who is making a change: ``$OVERLAY_AUTHOR``, else the login name, else ``"unknown"``.

    Recorded on overlay revisions and on alias moves.
    """
    author = os.environ.get(AUTHOR_ENV)
    if author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container running as a bare uid)
        return "unknown"


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
