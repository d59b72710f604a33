"""Links from registry listings to the MLflow UI.

:class:`overlay_sdk.registry.ModelRegistry` calls :func:`ui_base` once to settle the UI
address (``ui_url``, else ``$OVERLAY_MLFLOW_UI``, else an ``http(s)://`` tracking URI) and
``versions()`` calls :func:`ui_link` for each row.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

from overlay_sdk.errors import ValidationError

__all__ = ["UI_ENV", "ui_base", "ui_link"]

UI_ENV = "OVERLAY_MLFLOW_UI"
"""Environment variable with the MLflow UI address, used when ``ui_url`` is not given."""


def ui_base(ui_url: str | None, tracking_uri: str) -> str | None:
    """The MLflow UI address to link to (see :class:`ModelRegistry`), without credentials,
    trailing slash or fragment; ValidationError naming ``ui_url`` or the variable when
    malformed."""
    field = "ui_url"
    if ui_url is None:
        ui_url, field = os.environ.get(UI_ENV), UI_ENV
    if ui_url is None:
        parts = urlsplit(tracking_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        ui_url = tracking_uri
    if not isinstance(ui_url, str):
        raise ValidationError.at(field, f"give the MLflow UI address as a string such as "
                                 f"'http://127.0.0.1:5000', got a {type(ui_url).__name__}")
    if not ui_url.strip():
        return None
    parts = urlsplit(ui_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValidationError.at(field, f"{ui_url!r} is not an MLflow UI address; give the "
                                 "http(s) address it is served at, e.g. http://127.0.0.1:5000"
                                 " (or an empty string for no links)")
    netloc = parts.netloc.rpartition("@")[2]  # links are shown: never a user or password
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def ui_link(ui_url: str, name: str, version: str) -> str:
    """The MLflow UI page of a model version: ``{ui_url}/#/models/{name}/versions/{version}``
    (the route of MLflow's UI, which URL-encodes the name)."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{quote(version)}"
