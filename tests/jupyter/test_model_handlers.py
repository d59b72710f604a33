"""Model aliases through the REST API: ``GET models/NAME/aliases`` and ``POST
models/NAME/rollback`` (``cp.models.rollback``), the overlays naming ``model@alias``
following the move, and errors naming the field with nothing moved.

The module has its own registry (model ``churn`` versions 1-3, labels ``C=1.0``, ``C=0.1``,
``C=10.0``): alias history is kept in the registry, the session's shared one must keep none.
Each test moves its own aliases; the setup moves are dated in the past (an injected clock),
the server's rollbacks happen now.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tornado.httpclient import HTTPClientError

from overlay_sdk.client import ControlPlane, connect
from tests.conftest import _fit, dump_sqlite

API = ("overlay-sdk", "api")
MODEL = "churn"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def churn_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("churn-registry")
    with connect(home) as cp:
        for c in (1.0, 0.1, 10.0):
            cp.models.register(MODEL, model=_fit(c), label=f"C={c}")
    return home


@pytest.fixture
def registry_uri(churn_registry: Path) -> str:
    return f"sqlite:///{churn_registry}/mlflow.db"


@pytest.fixture(autouse=True)
def author(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OVERLAY_AUTHOR", "jupyter-ana")
    yield "jupyter-ana"


def moves(sdk: ControlPlane, alias: str, *steps: tuple[timedelta, str]) -> None:
    """Point ``MODEL@alias`` at each version, ``ago`` before now (oldest first)."""
    for ago, version in steps:
        sdk.models.clock = lambda ago=ago: NOW - ago  # type: ignore[method-assign]
        sdk.models.set_alias(MODEL, alias, version, reason=f"set to {version}")
    del sdk.models.clock


async def post(jp_fetch: Any, name: str, body: Any) -> tuple[int, dict[str, Any]]:
    text = body if isinstance(body, str) else json.dumps(body)
    try:
        response = await jp_fetch(*API, "models", name, "rollback", method="POST", body=text)
    except HTTPClientError as err:
        assert err.response is not None
        error = json.loads(err.response.body)["error"]
        assert error["status"] == err.code and error["message"]
        return err.code, error
    return response.code, json.loads(response.body)


def serving(sdk: ControlPlane, alias: str) -> str:
    return sdk.models.get_version_by_alias(MODEL, alias).version


def snapshot(sdk: ControlPlane, home: Path) -> Any:
    """The overlays and the model's aliases with their history."""
    return (dump_sqlite(home / "overlays.db"),
            sdk.models.alias_history(MODEL).to_dict("records"),
            sorted(sdk.models.list().loc[0, "aliases"].items()))


async def test_rollback_moves_the_alias_and_the_overlays_follow(
        jp_fetch: Any, sdk: ControlPlane, author: str) -> None:
    moves(sdk, "serving", (timedelta(days=3), "1"), (timedelta(days=2), "2"),
          (timedelta(hours=1), "3"))
    follows = sdk.overlays.create("follows", host="http://127.0.0.1:9",
                                  routes={f"{MODEL}@serving": 100})
    shadowing = sdk.overlays.create("shadowing", host="http://127.0.0.1:9",
                                    routes={f"{MODEL}:1": 100},
                                    shadow={"model": MODEL, "alias": "serving", "percent": 10})
    pinned = sdk.overlays.create("pinned", host="http://127.0.0.1:9",
                                 routes={f"{MODEL}:3": 100})
    assert follows.spec.routes[0].version == "3"

    listed = json.loads((await jp_fetch(*API, "models", MODEL, "aliases")).body)
    assert listed["model"] == MODEL and listed["aliases"] == {"serving": "3"}
    assert [(h["alias"], h["from"], h["to"], h["author"], h["reason"])
            for h in listed["history"]] == [
        ("serving", None, "1", author, "set to 1"), ("serving", "1", "2", author, "set to 2"),
        ("serving", "2", "3", author, "set to 3")]
    first = datetime.fromisoformat(listed["history"][0]["time"])
    assert abs(first - (NOW - timedelta(days=3))) < timedelta(seconds=1)

    # the default: "previous", alias "serving"
    code, answer = await post(jp_fetch, MODEL, "")
    assert (code, answer) == (200, {"model": MODEL, "alias": "serving", "version": "2",
                                    "previous": "3", "overlays": ["follows", "shadowing"]})
    assert serving(sdk, "serving") == "2"
    follows.refresh()
    assert (follows.revision, follows.spec.routes[0].version) == (2, "2")
    shadowing.refresh()
    assert shadowing.spec.shadow is not None and shadowing.spec.shadow.version == "2"
    assert pinned.refresh().revision == 1
    last = sdk.models.alias_history(MODEL, "serving").iloc[-1]
    assert (last["version"], last["previous"], last["author"], last["reason"]) == (
        "2", "3", author, "rollback to previous")

    # every form of "to" (shadowing routes to v1: it could not follow the alias to v1)
    sdk.overlays.delete("shadowing")
    iso = (NOW - timedelta(hours=60)).strftime("%Y-%m-%dT%H:%M:%SZ")  # v1 served then
    for body, version, previous in [
        ({"to": "3", "reason": "fixed upstream"}, "3", "2"),
        ({"to": "yesterday"}, "2", "3"),  # v2 served 24 h ago
        ({"to": 3}, "3", "2"),
        ({"to": "C=1.0"}, "1", "3"),  # a label
        ({"to": "previous", "alias": "serving"}, "3", "1"),
        ({"to": iso}, "1", "3"),
    ]:
        code, answer = await post(jp_fetch, MODEL, body)
        assert (code, answer["version"], answer["previous"]) == (200, version, previous), body
        assert answer["overlays"] == ["follows"]
        assert serving(sdk, "serving") == version
        assert follows.refresh().spec.routes[0].version == version
    assert sdk.models.alias_history(MODEL, "serving").iloc[-6]["reason"] == "fixed upstream"

    # to where it already is: nothing recorded, no overlay changed
    revision = follows.refresh().revision
    history = sdk.models.alias_history(MODEL, "serving")
    code, answer = await post(jp_fetch, MODEL, {"to": 1})
    assert (code, answer["version"], answer["previous"], answer["overlays"]) == (
        200, "1", "1", [])
    assert follows.refresh().revision == revision
    pd.testing.assert_frame_equal(sdk.models.alias_history(MODEL, "serving"), history)

    listed = json.loads((await jp_fetch(*API, "models", MODEL, "aliases")).body)
    assert listed["aliases"] == {"serving": "1"}
    assert len(listed["history"]) == 3 + 7
    assert [h["to"] for h in listed["history"][3:]] == ["2", "3", "2", "3", "1", "3", "1"]


async def test_bad_rollbacks_name_the_field_and_move_nothing(
        jp_fetch: Any, sdk: ControlPlane, home: Path) -> None:
    moves(sdk, "canary", (timedelta(days=2), "1"), (timedelta(days=1), "2"))
    moves(sdk, "fresh", (timedelta(hours=2), "3"))
    sdk.overlays.create("follows", host="http://127.0.0.1:9", routes={f"{MODEL}@canary": 100})
    future = (NOW + timedelta(days=1)).isoformat()
    before = snapshot(sdk, home)
    cases: list[tuple[str, Any, int, str | None]] = [
        ("nope", {}, 404, "name"),
        ("-bad", {}, 400, "name"),
        (MODEL, {"alias": "never-set"}, 404, "alias"),
        (MODEL, {"alias": "latest"}, 400, "alias"),
        (MODEL, {"alias": "no spaces"}, 400, "alias"),
        (MODEL, {"alias": 3}, 400, "alias"),
        (MODEL, {"to": 99, "alias": "canary"}, 404, "to"),
        (MODEL, {"to": "0", "alias": "canary"}, 400, "to"),
        (MODEL, {"to": 0, "alias": "canary"}, 400, "to"),
        (MODEL, {"to": True, "alias": "canary"}, 400, "to"),
        (MODEL, {"to": 2.5, "alias": "canary"}, 400, "to"),
        (MODEL, {"to": "", "alias": "canary"}, 400, "to"),
        (MODEL, {"to": "whenever it worked", "alias": "canary"}, 400, "to"),
        (MODEL, {"to": future, "alias": "canary"}, 400, "to"),
        (MODEL, {"to": "a week ago", "alias": "canary"}, 404, "to"),  # before it was set
        (MODEL, {"alias": "fresh"}, 404, "to"),  # set once: no previous position
        (MODEL, {"alias": "canary", "reason": "x" * 1001}, 400, "reason"),
        (MODEL, {"alias": "canary", "reason": 7}, 400, "reason"),
        (MODEL, {"alias": "canary", "when": "now"}, 400, "when"),
        (MODEL, "{not json", 400, "body"),
        (MODEL, ["previous"], 400, "body"),
    ]
    for name, body, status, field in cases:
        code, error = await post(jp_fetch, name, body)
        assert (code, error["field"]) == (status, field), (name, body, error)
    assert snapshot(sdk, home) == before
    code, error = await post(jp_fetch, "nope", {})
    assert MODEL in error["message"]  # names the models that exist
    code, error = await post(jp_fetch, MODEL, {"alias": "never-set"})
    assert "canary" in error["message"]  # names the aliases with a history

    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API, "models", "nope", "aliases")
    assert caught.value.code == 404 and caught.value.response is not None
    assert json.loads(caught.value.response.body)["error"]["field"] == "name"


async def test_a_move_an_overlay_could_not_follow_is_a_conflict(
        jp_fetch: Any, sdk: ControlPlane, home: Path) -> None:
    moves(sdk, "cand", (timedelta(days=2), "2"), (timedelta(hours=3), "3"))
    # routes to v2 and shadows churn@cand: following cand back to 2 would shadow its route
    sdk.overlays.create("clash", host="http://127.0.0.1:9", routes={f"{MODEL}:2": 100},
                        shadow=f"{MODEL}@cand")
    sdk.overlays.create("follows", host="http://127.0.0.1:9", routes={f"{MODEL}@cand": 100})
    before = snapshot(sdk, home)
    code, error = await post(jp_fetch, MODEL, {"alias": "cand"})
    assert (code, error["field"]) == (409, "to")
    assert "'clash' could not follow" in error["message"]
    assert snapshot(sdk, home) == before
    assert serving(sdk, "cand") == "3"

    sdk.overlays.delete("clash")
    code, answer = await post(jp_fetch, MODEL, {"alias": "cand", "reason": "clash gone"})
    assert (code, answer["version"], answer["overlays"]) == (200, "2", ["follows"])



async def test_an_overlay_that_could_not_be_rewritten_after_the_move_is_a_502(
        jp_fetch: Any, sdk: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    from overlay_sdk.errors import BackendError

    moves(sdk, "flaky", (timedelta(days=2), "1"), (timedelta(hours=3), "2"))
    broken = sdk.overlays.create("broken", host="http://127.0.0.1:9",
                                 routes={f"{MODEL}@flaky": 100})
    fine = sdk.overlays.create("fine", host="http://127.0.0.1:9",
                               routes={f"{MODEL}@flaky": 100})
    real_write = ControlPlane._write

    def write(self: ControlPlane, doc: Any, **kwargs: Any) -> Any:
        if doc["metadata"]["name"] == "broken":
            raise BackendError("the store at /x failed: disk I/O error")
        return real_write(self, doc, **kwargs)

    monkeypatch.setattr(ControlPlane, "_write", write)
    code, error = await post(jp_fetch, MODEL, {"alias": "flaky"})
    assert (code, error["field"]) == (502, None)
    assert "'broken' kept revision 1" in error["message"]
    assert serving(sdk, "flaky") == "1"  # the move was made; the other overlay followed
    assert fine.refresh().spec.routes[0].version == "1"
    assert broken.refresh().spec.routes[0].version == "2"
