"""Links from registry listings to the MLflow UI.

:class:`overlay_sdk.registry.ModelRegistry` settles the UI address with :func:`ui_base`:
the ``ui_url`` argument, else ``$OVERLAY_MLFLOW_UI``, else an ``http(s)://`` tracking URI;
``versions()`` calls :func:`ui_link` for each row.

When it is checked: a malformed ``ui_url`` argument is the caller's own mistake and fails
the constructor. A malformed ``$OVERLAY_MLFLOW_UI`` does not: the variable is read when the
registry is made but checked only when links are needed (``ModelRegistry.ui_url``, hence
``versions()``), which then raise ValidationError naming the variable. So a bad variable
breaks only what shows links, not every command that merely makes a registry. A tracking
URI never fails: it gives its scheme, host and path. Messages mask credentials
(:func:`~overlay_sdk.registry_redact.redact`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from overlay_sdk.errors import ValidationError
from overlay_sdk.registry_redact import redact

__all__ = ["UI_ENV", "ui_base", "ui_link"]

UI_ENV = "OVERLAY_MLFLOW_UI"
"""Environment variable with the MLflow UI address, used when ``ui_url`` is not given."""


def ui_base(ui_url: str | None, tracking_uri: str, *,
            environ: Mapping[str, str] | None = None) -> str | None:
    """The MLflow UI address to link to (see :class:`ModelRegistry`), without credentials,
    query, trailing slash or fragment; ``environ`` (default ``os.environ``) is where
    ``$OVERLAY_MLFLOW_UI`` is read. ValidationError naming ``ui_url`` or the variable when
    that is malformed (credentials masked); None for no links."""
    field = "ui_url"
    if ui_url is None:
        ui_url, field = (os.environ if environ is None else environ).get(UI_ENV), UI_ENV
    if ui_url is None:
        try:
            parts = urlsplit(tracking_uri)
        except ValueError:  # such as an unclosed '[' of an IPv6 host: MLflow will say
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    if not isinstance(ui_url, str):
        raise ValidationError.at(field, f"give the MLflow UI address as a string such as "
                                 f"'http://127.0.0.1:5000', got a {type(ui_url).__name__}")
    if not ui_url.strip():
        return None
    try:
        parts = urlsplit(ui_url.strip())
    except ValueError:  # an unclosed '[' of an IPv6 host
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValidationError.at(field, redact(
            f"{ui_url!r} is not an MLflow UI address; give the http(s) address it is served "
            "at, e.g. http://127.0.0.1:5000 (or an empty string for no links)"))
    netloc = parts.netloc.rpartition("@")[2]  # links are shown: never a user or password
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def ui_link(ui_url: str, name: str, version: str) -> str:
    """The MLflow UI page of a model version: ``{ui_url}/#/models/{name}/versions/{version}``
    (the route of MLflow's UI, which URL-encodes the name)."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{quote(version)}"
