"""The REST handlers of the server extension (``docs/jupyter-extension-api.md``).

Thin: each method parses its query and body (:mod:`overlay_sdk.jupyter.payloads`), runs the
blocking SDK work (:mod:`overlay_sdk.jupyter.service`) in a worker thread so the server never
waits on it, and answers JSON, or ``{"error": {"status", "field", "message"}}``. Every
method is ``@tornado.web.authenticated`` (no user: 403) and ``@authorized`` (the server's
Authorizer decides on resource ``overlay-sdk``); POSTs from a cookie session need the XSRF
token, as every Jupyter API (``APIHandler``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from overlay_sdk.client import ControlPlane
from overlay_sdk.jupyter import service
from overlay_sdk.jupyter.config import Planes
from overlay_sdk.jupyter.payloads import (
    ApiError,
    api_error,
    dumps,
    parse_body,
    parse_limit,
    parse_model_rollback,
    parse_plane,
    parse_rollback,
    parse_since,
    parse_traffic,
    traffic_field,
)
from overlay_sdk.topology import DEFAULT_SINCE

__all__ = ["API_PREFIX", "AUTH_RESOURCE", "PLANES_SETTING", "handler_table"]

API_PREFIX = ("overlay-sdk", "api")
AUTH_RESOURCE = "overlay-sdk"
PLANES_SETTING = "overlay_sdk_planes"
_NAME = r"(?P<name>[^/]+)"


class _Handler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def planes(self) -> Planes:
        planes: Planes = self.settings[PLANES_SETTING]
        return planes

    async def answer(self, work: Callable[[ControlPlane], Any], *,
                     field_of: Callable[[str], str] | None = None) -> None:
        """Run ``work`` with the request's control plane in a worker thread; answer its
        result, or the error it raised."""
        try:
            plane = parse_plane(self.get_query_argument("plane", None))

            author = self.author()

            def run() -> Any:
                with self.planes.lease(plane) as cp, cp.acting_as(author):
                    return work(cp)

            result = await IOLoop.current().run_in_executor(None, run)
        except Exception as err:
            self.fail(api_error(err, field_of=field_of), err)
            return
        self.finish(dumps(result))

    def author(self) -> str | None:
        """Who the request's changes are recorded as: the JupyterHub user when the server
        runs under JupyterHub (a plain server's identities are random names per browser:
        then the server's own author, ``$OVERLAY_AUTHOR`` or its login name)."""
        if not os.environ.get("JUPYTERHUB_USER"):
            return None
        name = getattr(self.current_user, "username", None)
        return name if isinstance(name, str) and name.strip() else None

    def fail(self, error: ApiError, cause: BaseException | None = None) -> None:
        if error.status >= 500:
            self.log.error("%s %s: %s", self.request.method, self.request.path,
                           error.message, exc_info=cause if error.status == 500 else None)
        self.set_status(error.status)
        self.finish(dumps(error.to_dict()))


class StatusHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(service.status)


class OverlaysHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(service.list_overlays)


class OverlayHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.answer(lambda cp: service.get_overlay(cp, name))


class RollbackHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        try:
            request = parse_rollback(parse_body(self.request.body, empty={}))
        except ApiError as err:
            self.fail(err)
            return
        await self.answer(lambda cp: service.rollback(cp, name, request))


class TrafficHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        try:
            request = parse_traffic(parse_body(self.request.body))
        except ApiError as err:
            self.fail(err)
            return
        await self.answer(lambda cp: service.set_traffic(cp, name, request),
                          field_of=lambda path: traffic_field(path, request))


class ModelsHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(service.models)


class ModelAliasesHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.answer(lambda cp: service.aliases(cp, name))


class ModelRollbackHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        try:
            request = parse_model_rollback(parse_body(self.request.body, empty={}))
        except ApiError as err:
            self.fail(err)
            return
        await self.answer(lambda cp: service.rollback_model(cp, name, request))


class TopologyHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            since = parse_since(self.get_query_argument("since", None), DEFAULT_SINCE)
        except ApiError as err:
            self.fail(err)
            return
        await self.answer(lambda cp: service.topology(cp, since))


class AlertsHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            limit = parse_limit(self.get_query_argument("limit", None))
        except ApiError as err:
            self.fail(err)
            return
        overlay = self.get_query_argument("overlay", None) or None
        await self.answer(lambda cp: service.alerts(cp, limit=limit, overlay=overlay))


_ROUTES: list[tuple[str, type[_Handler]]] = [
    ("status", StatusHandler),
    ("overlays", OverlaysHandler),
    (f"overlays/{_NAME}", OverlayHandler),
    (f"overlays/{_NAME}/rollback", RollbackHandler),
    (f"overlays/{_NAME}/traffic", TrafficHandler),
    ("models", ModelsHandler),
    (f"models/{_NAME}/aliases", ModelAliasesHandler),
    (f"models/{_NAME}/rollback", ModelRollbackHandler),
    ("topology", TopologyHandler),
    ("alerts", AlertsHandler),
]


def handler_table(base_url: str) -> list[tuple[str, type[_Handler]]]:
    """The URL patterns under ``base_url`` (``/``, or ``/user/ana/`` behind JupyterHub)."""
    return [(url_path_join(base_url, *API_PREFIX, path), handler)
            for path, handler in _ROUTES]
