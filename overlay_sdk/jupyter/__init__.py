"""The Jupyter server extension of overlay-sdk: the REST API the JupyterLab sidebar
("AI Overlays", ``jupyter_ext/``) reads and changes overlays through.

Enabled on install (``etc/jupyter/jupyter_server_config.d/overlay_sdk.json``); the routes
are under the server's ``base_url`` + ``overlay-sdk/api/`` (``docs/jupyter-extension-api.md``).
Which control plane: ``c.OverlaySdk.home`` and ``c.OverlaySdk.registry_uri``
(:class:`~overlay_sdk.jupyter.config.OverlaySdk`).

Importing this package is cheap (``jupyter server extension list`` does it): the SDK is
imported when the server loads the extension.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter_server finds the loader: this module."""
    return [{"module": "overlay_sdk.jupyter"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handler table under the server's ``base_url``, with the control planes
    the server's ``OverlaySdk`` configuration names (opened on the first request)."""
    from jupyter_server.utils import url_path_join

    from overlay_sdk.jupyter.config import OverlaySdk, Planes
    from overlay_sdk.jupyter.handlers import API_PREFIX, PLANES_SETTING, handler_table

    settings = OverlaySdk(config=server_app.config)
    planes = Planes(settings)
    web_app = server_app.web_app
    base_url = web_app.settings["base_url"]
    web_app.settings[PLANES_SETTING] = planes
    web_app.add_handlers(".*$", handler_table(base_url))
    # jupyter_server has no shutdown hook for module extensions (only ExtensionApps are
    # stopped): close the control planes when the server app goes, or at exit.
    weakref.finalize(server_app, planes.close)
    server_app.log.info(
        "overlay-sdk: REST API at %s (control plane: %s)",
        url_path_join(base_url, *API_PREFIX, ""), settings.home or "overlay_sdk.connect() default",
    )
