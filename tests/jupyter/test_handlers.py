"""The server extension's REST API through a real Jupyter server (pytest-jupyter): the shapes
of docs/jupyter-extension-api.md, authentication and XSRF, field-named errors that change
nothing, changes seen through the SDK, ``?plane=`` and a JupyterHub-style ``base_url``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado.httpclient import HTTPClientError, HTTPResponse

import overlay_sdk
from overlay_sdk.alerts import Alert, raise_alerts
from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.jupyter import handlers
from overlay_sdk.overlays import Overlay
from tests.conftest import dump_sqlite

API = ("overlay-sdk", "api")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def _routes() -> list[tuple[str, str, type[Any]]]:
    """(METHOD, path under API, handler) of every method each handler of the handler table
    defines (not APIHandler's own OPTIONS), NAME filled in: a new route or method is covered
    without touching the tests."""
    prefix = "/" + "/".join(API) + "/"
    out = []
    for pattern, handler in handlers.handler_table("/"):
        assert pattern.startswith(prefix), pattern
        path = pattern[len(prefix):]
        name = "fraud" if path.startswith("models/") else "scoring"
        path = path.replace(handlers._NAME, name)
        assert "(" not in path, f"fill in the new path argument of {pattern}"
        for method in _METHODS:
            if getattr(handler, method) is not getattr(APIHandler, method):  # ours
                out.append((method.upper(), path, handler))
    return out


ROUTES = _routes()
POST_BODIES: dict[str, Any] = {  # a body each POST route accepts
    "overlays/scoring/rollback": {"to": 1},
    "overlays/scoring/traffic": {"weights": {"fraud:1": 100}},
    "models/fraud/rollback": {"to": "1", "alias": "never-set-here"},
}
POSTS = [path for method, path, _ in ROUTES if method == "POST"]


async def get(jp_fetch: Any, *path: str, **params: str) -> Any:
    response = await jp_fetch(*API, *path, params=params)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def post(jp_fetch: Any, *path: str, body: Any, **params: str) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    response = await jp_fetch(*API, *path, method="POST", body=text, params=params)
    assert response.code == 200
    return json.loads(response.body)


async def refused(jp_fetch: Any, *path: str, method: str = "GET", body: Any = None,
                  **params: str) -> tuple[int, dict[str, Any]]:
    """The status and error object of a call that must fail."""
    kwargs: dict[str, Any] = {"method": method, "params": params}
    if method == "POST":
        kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API, *path, **kwargs)
    response = caught.value.response
    assert response is not None
    error = json.loads(response.body)["error"]
    assert error["status"] == caught.value.code
    assert isinstance(error["message"], str) and error["message"]
    return caught.value.code, error


def state(sdk: ControlPlane, home: Path) -> Any:
    """Everything stored about the overlays (to show that nothing changed)."""
    return dump_sqlite(home / "overlays.db")


async def test_get_shapes(jp_fetch: Any, sdk: ControlPlane, scoring: Overlay,
                          home: Path, registry_uri: str) -> None:
    now = datetime.now(UTC)
    raise_alerts(sdk.telemetry_url, [
        Alert(overlay="scoring", kind="budget", key="budget:scoring:today",
              message="spent 60 USD of 50 today", subject="usdPerDay",
              details={"day": now.date().isoformat()}),
        Alert(overlay="scoring", kind="drift", key="drift:scoring:old", version="fraud:1",
              subject="amount", message="amount drifted", time=now - timedelta(days=3)),
    ])

    status = await get(jp_fetch, "status")
    assert status == {"version": overlay_sdk.__version__, "controlPlane": str(home),
                      "registryUri": registry_uri, "overlays": 1, "models": 1}

    overlays = (await get(jp_fetch, "overlays"))["overlays"]
    assert len(overlays) == 1
    item = overlays[0]
    assert set(item) == {"name", "revision", "mode", "host", "weights", "shadow", "health",
                         "healthReason", "alerts", "updatedAt", "author", "message"}
    assert item["name"] == "scoring"
    assert item["revision"] == scoring.revision == 2
    assert item["mode"] == "passthrough"
    assert item["host"] == "http://127.0.0.1:9"
    assert item["weights"] == {"fraud:1": 90, "fraud:2": 10}
    assert item["shadow"] == {"ref": "fraud:3", "percent": 10.0}
    assert item["health"] == "warn"  # the open budget alert, as cp.topology() says
    assert item["healthReason"] == sdk.topology().node("overlay:scoring").reason != ""
    assert item["alerts"] == 1  # the drift alert is 3 days old
    assert ISO.match(item["updatedAt"])
    assert item["author"] == "ana"
    assert item["message"] == "canary"

    one = await get(jp_fetch, "overlays", "scoring")
    assert {k: v for k, v in one.items() if k != "history"} == item
    history = one["history"]
    assert [h["revision"] for h in history] == [1, 2]
    assert set(history[0]) == {"revision", "action", "author", "createdAt", "message",
                               "changes"}
    assert [h["message"] for h in history] == ["first", "canary"]
    assert {h["action"] for h in history} == {"apply"}
    assert all(h["author"] == "ana" and ISO.match(h["createdAt"]) for h in history)
    assert history[1]["changes"] == scoring.info.changes

    models = (await get(jp_fetch, "models"))["models"]
    assert [m["name"] for m in models] == ["fraud"]
    assert models[0]["latestVersion"] == "3"
    versions = models[0]["versions"]
    expected = sdk.models.versions("fraud")
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    assert [v["label"] for v in versions] == ["C=1.0", "C=0.1", "C=10.0"]
    assert [v["sha256"] for v in versions] == list(expected["sha256"])
    assert all(v["flavor"] == "sklearn" and v["aliases"] == [] for v in versions)
    assert all(ISO.match(v["createdAt"]) for v in versions)

    topology = await get(jp_fetch, "topology", since="1h")
    assert [n["id"] for n in topology["nodes"]] == [
        "host:http://127.0.0.1:9", "overlay:scoring", "version:fraud:1", "version:fraud:2",
        "version:fraud:3"]
    assert [(e["target"], e["kind"], e["share"]) for e in topology["edges"][1:]] == [
        ("version:fraud:1", "route", 90), ("version:fraud:2", "route", 10),
        ("version:fraud:3", "shadow", 10)]
    assert {"nodes", "edges", "columns", "since", "until", "window"} <= set(topology)
    since = datetime.fromisoformat(topology["since"])
    until = datetime.fromisoformat(topology["until"])
    assert abs((until - since) - timedelta(hours=1)) < timedelta(seconds=5)

    alerts = (await get(jp_fetch, "alerts"))["alerts"]
    assert [a["kind"] for a in alerts] == ["budget", "drift"]  # newest first
    assert alerts[1] == {"time": alerts[1]["time"], "overlay": "scoring", "kind": "drift",
                         "message": "amount drifted", "version": "fraud:1",
                         "subject": "amount"}
    assert ISO.match(alerts[1]["time"])
    assert len((await get(jp_fetch, "alerts", limit="1"))["alerts"]) == 1
    code, error = await refused(jp_fetch, "alerts", limit="0")
    assert (code, error["field"]) == (400, "limit")
    code, error = await refused(jp_fetch, "topology", since="soon")
    assert (code, error["field"]) == (400, "since")


def test_the_route_table_is_what_the_tests_cover() -> None:
    assert {(m, p) for m, p, _ in ROUTES} >= {
        ("GET", "status"), ("GET", "overlays"), ("GET", "overlays/scoring"),
        ("POST", "overlays/scoring/rollback"), ("POST", "overlays/scoring/traffic"),
        ("GET", "models"), ("GET", "models/fraud/aliases"), ("POST", "models/fraud/rollback"),
        ("GET", "topology"), ("GET", "alerts")}
    assert sorted(POSTS) == sorted(POST_BODIES)  # a new POST route needs a body here


@pytest.mark.parametrize(("method", "path", "handler"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_handler_method_is_authenticated_then_authorized(
        method: str, path: str, handler: type[Any]) -> None:
    """The outermost decorator is tornado's @authenticated, the next jupyter_server's
    @authorized: the server's own check in prepare() can be turned off
    (allow_unauthenticated_access), these cannot."""
    function = getattr(handler, method.lower())
    authenticated_code = tornado.web.authenticated(lambda self: None).__code__
    authorized_code = authorized(lambda self: None).__code__
    assert function.__code__ is authenticated_code, f"{handler.__name__}.{method.lower()}"
    assert function.__wrapped__.__code__ is authorized_code, f"{handler.__name__}"


@pytest.mark.parametrize("allow_unauthenticated", [False, True])
@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in ROUTES],
                         ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_unauthenticated_calls_are_refused(
        jp_fetch: Any, http_server_client: Any, jp_base_url: str, sdk: ControlPlane,
        scoring: Overlay, home: Path, method: str, path: str,
        allow_unauthenticated: bool) -> None:
    """With a wrong token and with no credentials at all: 403, nothing changed; also when
    the server lets unauthenticated requests reach the handlers."""
    body = json.dumps(POST_BODIES[path]) if method == "POST" else None
    before = state(sdk, home)
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API, *path.split("/"), method=method, body=body,
                       headers={"Authorization": "token not-the-token"})
    assert caught.value.code == 403
    url = f"{jp_base_url}{'/'.join(API)}/{path}"
    response = await http_server_client.fetch(url, method=method, body=body,
                                              raise_error=False, follow_redirects=False)
    assert response.code == 403, (method, path)
    assert state(sdk, home) == before
    assert scoring.refresh().revision == 2
    ok = await jp_fetch(*API, *path.split("/"), method=method, body=body, raise_error=False)
    assert ok.code != 403  # the token the fixture sends is let in


def _cookies(response: HTTPResponse) -> dict[str, str]:
    out = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        out[name] = rest.split(";", 1)[0]
    return out


@pytest.mark.parametrize("path", POSTS)
async def test_cookie_post_needs_the_xsrf_token(http_server_client: Any, jp_base_url: str,
                                                jp_serverapp: Any, sdk: ControlPlane,
                                                home: Path, scoring: Overlay,
                                                path: str) -> None:
    """A browser session: log in with the token on the login page (cookie), then POST with
    the cookie alone (refused: a cross-site page could send it) and with the XSRF token."""
    login = f"{jp_base_url}login"
    page = await http_server_client.fetch(login, raise_error=False)
    assert page.code == 200
    jar = _cookies(page)
    xsrf = jar["_xsrf"]
    token = jp_serverapp.identity_provider.token
    response = await http_server_client.fetch(
        login, method="POST", body=urlencode({"_xsrf": xsrf, "password": token}),
        headers={"Cookie": f"_xsrf={xsrf}"}, follow_redirects=False, raise_error=False)
    assert response.code == 302
    jar.update(_cookies(response))
    assert len(jar) == 2  # _xsrf and the login cookie
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    url = f"{jp_base_url}{'/'.join(API)}/{path}"
    body = json.dumps(POST_BODIES[path])

    read = await http_server_client.fetch(f"{jp_base_url}{'/'.join(API)}/overlays",
                                          headers={"Cookie": cookie}, raise_error=False)
    assert read.code == 200  # the session works for reading

    before = state(sdk, home)
    refused_post = await http_server_client.fetch(
        url, method="POST", body=body, headers={"Cookie": cookie}, raise_error=False)
    assert refused_post.code == 403
    assert "xsrf" in json.loads(refused_post.body)["message"].lower()
    assert state(sdk, home) == before

    accepted = await http_server_client.fetch(
        url, method="POST", body=body, headers={"Cookie": cookie, "X-XSRFToken": xsrf},
        raise_error=False)
    assert accepted.code != 403, accepted.body  # the handler answered
    if path.startswith("overlays/"):
        assert accepted.code == 200, accepted.body
        assert scoring.refresh().revision == 3
    else:  # the shared registry's fraud has no such alias: answered, and nothing moved
        assert (accepted.code, json.loads(accepted.body)["error"]["field"]) == (404, "alias")


async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
        jp_fetch: Any, sdk: ControlPlane, scoring: Overlay, home: Path) -> None:
    before = state(sdk, home)
    cases: list[tuple[str, Any, int, str | None]] = [
        ("traffic", {"weights": {"fraud:1": 80, "fraud:2": 10}}, 400, "weights"),
        ("traffic", {"weights": {"fraud:1": "ninety", "fraud:2": 10}}, 400,
         "weights['fraud:1']"),
        ("traffic", {"weights": {"fraud:1": 90.5, "fraud:2": 9.5}}, 400, "weights['fraud:1']"),
        ("traffic", {"weights": {"fraud:1": 90, "fraud:9": 10}}, 400, "weights['fraud:9']"),
        ("traffic", {"weights": {"fraud:1": 90, "fraud 2": 10}}, 400, "weights['fraud 2']"),
        ("traffic", {"weights": {}}, 400, "weights"),
        ("traffic", {"weights": [90, 10]}, 400, "weights"),
        ("traffic", {"weights": {"fraud:1": 100}, "shadow": {"ref": "fraud:3",
                                                            "percent": 150}},
         400, "shadow.percent"),
        ("traffic", {"weights": {"fraud:1": 100}, "shadow": {"ref": "fraud:1"}}, 400,
         "shadow"),
        ("traffic", {"weights": {"fraud:1": 100}, "shadow": "fraud:3"}, 400, "shadow"),
        ("traffic", {"weights": {"fraud:1": 100}, "shadows": None}, 400, "shadows"),
        ("traffic", "{not json", 400, "body"),
        ("traffic", "", 400, "body"),
        ("traffic", [1, 2], 400, "body"),
        ("rollback", {"to": "two"}, 400, "to"),
        ("rollback", {"to": True}, 400, "to"),
        ("rollback", {"message": 5}, 400, "message"),
        ("rollback", "nope", 400, "body"),
        ("rollback", {"to": 99}, 404, "to"),
        ("rollback", {"revision": "2"}, 400, "revision"),
        ("rollback", {"revision": 2.0}, 400, "revision"),
        ("traffic", {"weights": {"fraud:1": 100}, "revision": "2"}, 400, "revision"),
    ]
    for action, body, status, field in cases:
        code, error = await refused(jp_fetch, "overlays", "scoring", action, method="POST",
                                    body=body)
        assert (code, error["field"]) == (status, field), (action, body, error)
    assert "sum" in (await refused(jp_fetch, "overlays", "scoring", "traffic", method="POST",
                                   body={"weights": {"fraud:1": 80, "fraud:2": 10}}))[1][
        "message"]
    assert state(sdk, home) == before
    again = sdk.overlays.get("scoring")
    assert again.revision == 2 and len(again.history()) == 2


async def test_unknown_overlay_is_404(jp_fetch: Any, scoring: Overlay) -> None:
    code, error = await refused(jp_fetch, "overlays", "nope")
    assert code == 404 and "scoring" in error["message"]  # names those that exist
    code, _ = await refused(jp_fetch, "overlays", "nope", "rollback", method="POST", body={})
    assert code == 404
    code, _ = await refused(jp_fetch, "overlays", "nope", "traffic", method="POST",
                            body={"weights": {"fraud:1": 100}})
    assert code == 404


async def test_rollback_and_traffic_change_the_overlay_as_the_sdk_sees_it(
        jp_fetch: Any, sdk: ControlPlane, scoring: Overlay) -> None:
    first = sdk.store.history("scoring")[0].overlay
    assert first is not None
    answer = await post(jp_fetch, "overlays", "scoring", "rollback",
                        body={"to": 1, "message": "back to one version"})
    seen = sdk.overlays.get("scoring")
    assert seen.revision == answer["revision"] == 3
    assert seen.spec.weights() == first.spec.weights() == answer["weights"] == {"fraud:1": 100}
    assert seen.spec.shadow is None and answer["shadow"] is None
    assert seen.info.message == answer["message"] == "back to one version"

    answer = await post(jp_fetch, "overlays", "scoring", "traffic",
                        body={"weights": {"fraud:1": 95, "fraud:2": 5},
                              "shadow": {"ref": "fraud:3", "percent": 25}, "revision": 3})
    seen.refresh()
    assert seen.revision == answer["revision"] == 4
    assert seen.spec.weights() == answer["weights"] == {"fraud:1": 95, "fraud:2": 5}
    assert seen.spec.shadow is not None and seen.spec.shadow.percent == 25
    assert answer["shadow"] == {"ref": "fraud:3", "percent": 25.0}

    # no shadow given: kept; null: removed
    answer = await post(jp_fetch, "overlays", "scoring", "traffic",
                        body={"weights": {"fraud:1": 50, "fraud:2": 50}})
    assert answer["shadow"] == {"ref": "fraud:3", "percent": 25.0}
    answer = await post(jp_fetch, "overlays", "scoring", "traffic",
                        body={"weights": {"fraud:1": 50, "fraud:2": 50}, "shadow": None})
    assert answer["shadow"] is None and sdk.overlays.get("scoring").spec.shadow is None

    # an empty body rolls back to the latest earlier revision that differs
    answer = await post(jp_fetch, "overlays", "scoring", "rollback", body="")
    assert answer["shadow"] == {"ref": "fraud:3", "percent": 25.0}
    assert sdk.overlays.get("scoring").revision == answer["revision"] == 7


async def test_a_stale_revision_is_a_conflict(jp_fetch: Any, sdk: ControlPlane,
                                              scoring: Overlay, home: Path) -> None:
    """The sidebar sends the revision it shows; someone changed the overlay since."""
    sdk.overlays.get("scoring").set_traffic({"fraud:1": 100})  # revision 3, elsewhere
    before = state(sdk, home)
    for action, body in [("rollback", {"to": 1, "revision": 2}),
                         ("traffic", {"weights": {"fraud:1": 70, "fraud:2": 30},
                                      "revision": 2})]:
        code, error = await refused(jp_fetch, "overlays", "scoring", action, method="POST",
                                    body=body)
        assert (code, error["field"]) == (409, "revision")
        assert "revision 3" in error["message"] and "revision 2" in error["message"]
    assert state(sdk, home) == before

    # the revision shown now: accepted
    answer = await post(jp_fetch, "overlays", "scoring", "rollback",
                        body={"to": 2, "revision": 3})
    assert answer["revision"] == 4 and answer["weights"] == {"fraud:1": 90, "fraud:2": 10}
    answer = await post(jp_fetch, "overlays", "scoring", "traffic",
                        body={"weights": {"fraud:1": 70, "fraud:2": 30}, "revision": 4})
    assert answer["revision"] == 5
    code, error = await refused(jp_fetch, "overlays", "scoring", "rollback", method="POST",
                                body={"revision": 4})  # already stale again
    assert (code, error["field"]) == (409, "revision")
    assert sdk.overlays.get("scoring").revision == 5


async def test_plane_selects_another_home(jp_fetch: Any, scoring: Overlay, tmp_path: Path,
                                          registry_uri: str) -> None:
    other = tmp_path / "other"
    with connect(other, registry_uri=registry_uri) as cp:
        cp.overlays.create("billing", host="http://127.0.0.1:9", routes={"fraud:2": 100})
    names = [o["name"] for o in (await get(jp_fetch, "overlays", plane=str(other)))["overlays"]]
    assert names == ["billing"]
    assert (await get(jp_fetch, "status", plane=str(other)))["controlPlane"] == str(other)
    answer = await post(jp_fetch, "overlays", "billing", "traffic", plane=str(other),
                        body={"weights": {"fraud:2": 60, "fraud:3": 40}})
    assert answer["revision"] == 2
    with connect(other, registry_uri=registry_uri) as cp:
        assert cp.overlays.get("billing").spec.weights() == {"fraud:2": 60, "fraud:3": 40}
    # the configured home is untouched, and still the default
    assert [o["name"] for o in (await get(jp_fetch, "overlays"))["overlays"]] == ["scoring"]
    code, error = await refused(jp_fetch, "status", plane="ftp://somewhere")
    assert (code, error["field"]) == (400, "plane")


async def test_a_plane_from_a_request_must_exist_and_nothing_is_created(
        jp_fetch: Any, scoring: Overlay, tmp_path: Path, jp_serverapp: Any) -> None:
    (tmp_path / "plain").mkdir()
    before = sorted(tmp_path.rglob("*"))
    for address, says in [("relative/home", "not a control plane address"),
                          ("~/home", "not a control plane address"),
                          ("ftp://somewhere", "not a control plane address"),
                          (str(tmp_path / "missing"), "there is no folder"),
                          (str(tmp_path / "plain"), "holds no overlays.db")]:
        for path in (("status",), ("overlays",), ("overlays", "scoring", "rollback")):
            method = "POST" if path[-1] == "rollback" else "GET"
            code, error = await refused(jp_fetch, *path, method=method, body={},
                                        plane=address)
            assert (code, error["field"]) == (400, "plane"), (address, path)
            assert says in error["message"] and "k8s://CONTEXT/NAMESPACE" in error["message"]
            assert "overlays.db" in error["message"]  # what to give instead
    assert sorted(tmp_path.rglob("*")) == before
    assert scoring.refresh().revision == 2
    planes = jp_serverapp.web_app.settings[handlers.PLANES_SETTING]
    assert len(planes.addresses()) <= 1  # at most the configured one was opened


@pytest.mark.parametrize("jp_base_url", ["/hub/user/ana/"])
async def test_served_under_the_base_url(jp_fetch: Any, http_server_client: Any,
                                         jp_auth_header: dict[str, str],
                                         scoring: Overlay) -> None:
    status = await get(jp_fetch, "status")
    assert status["overlays"] == 1
    response = await http_server_client.fetch("/hub/user/ana/overlay-sdk/api/overlays",
                                              headers=jp_auth_header)
    assert json.loads(response.body)["overlays"][0]["name"] == "scoring"
    outside = await http_server_client.fetch("/overlay-sdk/api/status", headers=jp_auth_header,
                                             raise_error=False, follow_redirects=False)
    assert outside.code == 404


async def test_backend_and_internal_errors(jp_fetch: Any, scoring: Overlay,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing store or registry is 502 with its message; any other failure is 500 without
    its details; health that cannot be read leaves the overlays listed, health unknown."""
    from overlay_sdk.errors import BackendError
    from overlay_sdk.jupyter import service

    def down(*_: Any, **__: Any) -> Any:
        raise BackendError("the telemetry store at sqlite:///x is unreachable")

    monkeypatch.setattr(ControlPlane, "topology", down)
    item = (await get(jp_fetch, "overlays"))["overlays"][0]
    assert (item["name"], item["health"]) == ("scoring", "unknown")
    assert "unreachable" in item["healthReason"]
    code, error = await refused(jp_fetch, "topology")
    assert (code, error["field"]) == (502, None) and "unreachable" in error["message"]

    def bug(*_: Any, **__: Any) -> Any:
        raise KeyError("internal detail")

    monkeypatch.setattr(service, "models", bug)
    code, error = await refused(jp_fetch, "models")
    assert code == 500 and "internal detail" not in error["message"]


async def test_overlays_compute_the_topology_once_and_alerts_are_limited_in_sql(
        jp_fetch: Any, sdk: ControlPlane, scoring: Overlay,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from overlay_sdk.jupyter import service

    sdk.overlays.create("billing", host="http://127.0.0.1:9", routes={"fraud:2": 100})
    sdk.overlays.create("chat", host="http://127.0.0.1:9", routes={"fraud:3": 100})
    real_topology = ControlPlane.topology
    topologies: list[int] = []

    def counting(self: ControlPlane, **kwargs: Any) -> Any:
        topologies.append(1)
        return real_topology(self, **kwargs)

    monkeypatch.setattr(ControlPlane, "topology", counting)
    listed = (await get(jp_fetch, "overlays"))["overlays"]
    assert [o["name"] for o in listed] == ["billing", "chat", "scoring"]
    assert len(topologies) == 1  # one topology for every overlay's health
    await get(jp_fetch, "overlays", "scoring")
    assert len(topologies) == 2

    now = datetime.now(UTC)
    raise_alerts(sdk.telemetry_url, [
        Alert(overlay="scoring" if i % 2 else "chat", kind="drift", key=f"drift:{i}",
              message=f"drift {i}", time=now - timedelta(minutes=i)) for i in range(12)])
    real_read = service.read_alerts
    limits: list[Any] = []

    def spy(url: str, **kwargs: Any) -> Any:
        limits.append(kwargs.get("limit"))
        frame = real_read(url, **kwargs)
        limits.append(len(frame))
        return frame

    monkeypatch.setattr(service, "read_alerts", spy)
    alerts = (await get(jp_fetch, "alerts", limit="3"))["alerts"]
    assert [a["message"] for a in alerts] == ["drift 0", "drift 1", "drift 2"]
    assert limits == [3, 3]  # asked of the database, not cut afterwards
    limits.clear()
    alerts = (await get(jp_fetch, "alerts", limit="2", overlay="scoring"))["alerts"]
    assert [a["message"] for a in alerts] == ["drift 1", "drift 3"]
    assert limits == [2, 2]


def test_read_alerts_limit(tmp_path: Path) -> None:
    from overlay_sdk.alerts import read_alerts
    from overlay_sdk.errors import ValidationError

    url = f"sqlite:///{tmp_path / 'telemetry.db'}"
    now = datetime.now(UTC)
    raise_alerts(url, [Alert(overlay="o", kind="budget", key=f"k{i}", message=f"m{i}",
                             time=now - timedelta(hours=i)) for i in range(5)])
    assert list(read_alerts(url, limit=2)["message"]) == ["m0", "m1"]
    assert list(read_alerts(url, limit=10)["message"]) == ["m0", "m1", "m2", "m3", "m4"]
    assert len(read_alerts(url)) == 5
    assert list(read_alerts(url, since=now - timedelta(hours=3, minutes=30), limit=9)[
        "message"]) == ["m0", "m1", "m2", "m3"]
    for bad in (0, -1, True, 2.5, "3"):
        with pytest.raises(ValidationError) as caught:
            read_alerts(url, limit=bad)  # type: ignore[arg-type]
        assert caught.value.paths == ["limit"]

