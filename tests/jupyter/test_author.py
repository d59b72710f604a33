"""Who a change made through the server extension is recorded as: the JupyterHub user under
JupyterHub (its identity provider gives the hub's user name), the server's own author
(``$OVERLAY_AUTHOR`` or its login name) on a plain server, whose identities are random names."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets.config import Config

from overlay_sdk.client import ControlPlane
from overlay_sdk.overlays import Overlay


class HubIdentity(IdentityProvider):  # type: ignore[misc]
    """What JupyterHub's identity provider gives the single-user server: the hub user (the
    request authenticated as usual first)."""

    async def get_user(self, handler: Any) -> User | None:
        found = super().get_user(handler)
        if inspect.isawaitable(found):
            found = await found
        return None if found is None else User(username="ana", name="Ana")


@pytest.fixture(params=[False, True], ids=["plain", "hub"])
def hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv("OVERLAY_AUTHOR", "server-owner")
    if request.param:
        monkeypatch.setenv("JUPYTERHUB_USER", "ana")
    else:
        monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    return bool(request.param)


@pytest.fixture
def jp_server_config(home: Path, registry_uri: str, hub: bool) -> Config:
    server: dict[str, Any] = {"jpserver_extensions": {"overlay_sdk.jupyter": True}}
    if hub:
        server["identity_provider_class"] = HubIdentity
    return Config({"ServerApp": server,
                   "OverlaySdk": {"home": str(home), "registry_uri": registry_uri}})


async def test_changes_are_recorded_as_the_hub_user_under_jupyterhub(
        jp_fetch: Any, sdk: ControlPlane, scoring: Overlay, hub: bool) -> None:
    response = await jp_fetch("overlay-sdk", "api", "overlays", "scoring", "rollback",
                              method="POST", body=json.dumps({"to": 1}))
    assert response.code == 200
    assert sdk.store.history("scoring")[-1].author == ("ana" if hub else "server-owner")
