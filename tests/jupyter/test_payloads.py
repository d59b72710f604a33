"""The pure shaping of the server extension: SDK objects -> JSON, request bodies and query
arguments -> checked values with the field at fault named, SDK errors -> HTTP answers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from overlay_sdk.errors import (
    BackendError,
    ConflictError,
    FieldError,
    NotFoundError,
    ValidationError,
)
from overlay_sdk.jupyter.payloads import (
    ApiError,
    ModelRollbackRequest,
    ShadowChange,
    TrafficRequest,
    alert_counts,
    alerts_payload,
    aliases_payload,
    api_error,
    dumps,
    health_by_overlay,
    history_payload,
    models_payload,
    overlay_payload,
    parse_body,
    parse_limit,
    parse_model_rollback,
    parse_plane,
    parse_rollback,
    parse_since,
    parse_traffic,
    to_iso,
    traffic_field,
)
from overlay_sdk.overlays import KEEP
from overlay_sdk.spec import parse_overlay
from overlay_sdk.store import Revision

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def revision(number: int = 4, *, shadow: dict[str, Any] | None = None,
             alias: str | None = None) -> Revision:
    routes = [{"model": "fraud", "version": "1", "weight": 90},
              {"model": "fraud", "version": "2", "weight": 10, **({"alias": alias} if alias
                                                                   else {})}]
    spec: dict[str, Any] = {"host": {"url": "http://crm:8080"}, "mode": "passthrough",
                            "routes": routes}
    if shadow:
        spec["shadow"] = shadow
    overlay = parse_overlay({"metadata": {"name": "scoring"}, "spec": spec})
    return Revision(name="scoring", revision=number, action="apply", overlay=overlay,
                    author="ana", created_at=T0, message="canary", changes="routes")


def test_overlay_payload() -> None:
    rev = revision(shadow={"model": "fraud", "version": "3", "percent": 12.5})
    assert overlay_payload(rev, health=("warn", "budget"), alerts=2) == {
        "name": "scoring", "revision": 4, "mode": "passthrough", "host": "http://crm:8080",
        "weights": {"fraud:1": 90, "fraud:2": 10},
        "shadow": {"ref": "fraud:3", "percent": 12.5},
        "health": "warn", "healthReason": "budget", "alerts": 2,
        "updatedAt": "2026-05-01T09:30:00+00:00", "author": "ana", "message": "canary"}
    plain = overlay_payload(revision(alias="champion"))
    assert plain["shadow"] is None
    assert (plain["health"], plain["healthReason"], plain["alerts"]) == ("unknown", "", 0)
    assert plain["weights"] == {"fraud:1": 90, "fraud:2": 10}  # the resolved version
    tomb = Revision("scoring", 5, "delete", None, "ana", T0, "", "")
    with pytest.raises(ValueError, match="deletion"):
        overlay_payload(tomb)


def test_history_payload_is_oldest_first() -> None:
    revs = [revision(2), revision(1), Revision("scoring", 3, "delete", None, "bo", T0, "gone",
                                               "")]
    assert history_payload(revs) == [
        {"revision": 1, "action": "apply", "author": "ana",
         "createdAt": "2026-05-01T09:30:00+00:00", "message": "canary", "changes": "routes"},
        {"revision": 2, "action": "apply", "author": "ana",
         "createdAt": "2026-05-01T09:30:00+00:00", "message": "canary", "changes": "routes"},
        {"revision": 3, "action": "delete", "author": "bo",
         "createdAt": "2026-05-01T09:30:00+00:00", "message": "gone", "changes": ""},
    ]


def test_health_and_alert_counts() -> None:
    nodes = [{"kind": "host", "label": "crm", "health": "ok"},
             {"kind": "overlay", "label": "scoring", "health": "error", "reason": "error rate"},
             {"kind": "overlay", "label": "chat", "health": "ok", "reason": ""},
             {"kind": "version", "label": "fraud:1", "health": "warn"}]
    assert health_by_overlay(nodes) == {"scoring": ("error", "error rate"), "chat": ("ok", "")}
    assert alert_counts([{"overlay": "a"}, {"overlay": "b"}, {"overlay": "a"}]) == {"a": 2,
                                                                                    "b": 1}


def test_models_payload_from_sdk_records() -> None:
    import pandas as pd

    listed = [{"name": "fraud", "latest_version": "10", "versions": 2, "aliases": {},
               "updated_at": pd.Timestamp(T0)},
              {"name": "chat", "latest_version": None, "versions": 0, "aliases": {},
               "updated_at": pd.NaT}]
    versions = {"fraud": [
        {"version": "10", "label": float("nan"), "sha256": "b" * 64, "flavor": "onnx",
         "source": "x", "created_at": pd.Timestamp(T0), "aliases": ("prod", "champion")},
        {"version": "9", "label": "v9", "sha256": "a" * 64, "flavor": "sklearn",
         "source": "sklearn:LogisticRegression", "created_at": pd.NaT, "aliases": ()},
    ]}
    assert models_payload(listed, versions) == {"models": [
        {"name": "chat", "latestVersion": None, "versions": []},
        {"name": "fraud", "latestVersion": "10", "versions": [
            {"version": "9", "label": "v9", "sha256": "a" * 64, "flavor": "sklearn",
             "source": "sklearn:LogisticRegression", "createdAt": None, "aliases": []},
            {"version": "10", "label": None, "sha256": "b" * 64, "flavor": "onnx",
             "source": "x", "createdAt": "2026-05-01T09:30:00+00:00",
             "aliases": ["champion", "prod"]},
        ]},
    ]}


def test_alerts_payload_keeps_the_order_and_the_limit() -> None:
    rows = [{"time": T0, "overlay": "a", "kind": "budget", "message": "over",
             "version": None, "subject": "usdPerDay", "details": {}},
            {"time": T0, "overlay": "b", "kind": "drift", "message": "drift",
             "version": "fraud:1", "subject": float("nan"), "details": {}}]
    out = alerts_payload(rows, limit=5)["alerts"]
    assert [a["overlay"] for a in out] == ["a", "b"]
    assert out[1] == {"time": "2026-05-01T09:30:00+00:00", "overlay": "b", "kind": "drift",
                      "message": "drift", "version": "fraud:1", "subject": None}
    assert len(alerts_payload(rows, limit=1)["alerts"]) == 1


def test_dumps_and_iso() -> None:
    assert json.loads(dumps({"a": math.nan, "b": [math.inf, 1.5], "c": (1, "x")})) == {
        "a": None, "b": [None, 1.5], "c": [1, "x"]}
    assert to_iso(None) is None and to_iso(float("nan")) is None
    assert to_iso(T0) == "2026-05-01T09:30:00+00:00"


def test_parse_body() -> None:
    assert parse_body(b'{"to": 1}') == {"to": 1}
    assert parse_body(b"  ", empty={}) == {}
    for body in (b"", b"{nope", b"\xff\xfe"):
        with pytest.raises(ApiError) as caught:
            parse_body(body)
        assert (caught.value.status, caught.value.field) == (400, "body")


def test_parse_rollback() -> None:
    assert parse_rollback({}) == parse_rollback({"to": None, "message": None})
    request = parse_rollback({"to": 2, "message": "undo", "revision": 5})
    assert (request.to, request.message, request.revision) == (2, "undo", 5)
    for body, field in [([], "body"), ({"to": "2"}, "to"), ({"to": 2.0}, "to"),
                        ({"to": False}, "to"), ({"message": ["x"]}, "message"),
                        ({"message": "x" * 5000}, "message"), ({"revision": "5"}, "revision"),
                        ({"too": 2}, "too")]:
        with pytest.raises(ApiError) as caught:
            parse_rollback(body)
        assert (caught.value.status, caught.value.field) == (400, field), body


def test_parse_traffic() -> None:
    request = parse_traffic({"weights": {"fraud:1": 90, "fraud:2": 10}})
    assert request.weights == {"fraud:1": 90, "fraud:2": 10}
    assert request.shadow is KEEP and request.sdk_kwargs() == {"message": ""}
    removed = parse_traffic({"weights": {"fraud:1": 100}, "shadow": None, "message": "m"})
    assert removed.sdk_kwargs() == {"shadow": None, "message": "m"}
    shadowed = parse_traffic({"weights": {"fraud:1": 100}, "shadow": {"ref": "fraud:3"},
                              "revision": 7})
    assert shadowed.shadow == ShadowChange("fraud:3", 100.0) and shadowed.revision == 7
    assert shadowed.sdk_kwargs() == {"shadow": "fraud:3", "shadow_percent": 100.0,
                                     "message": ""}
    for body, field in [
        ("x", "body"), ({}, "weights"), ({"weights": {}}, "weights"),
        ({"weights": [["fraud:1", 100]]}, "weights"),
        ({"weights": {"fraud:1": True}}, "weights['fraud:1']"),
        ({"weights": {"fraud:1": 99.5}}, "weights['fraud:1']"),
        ({"weights": {"fraud:1": None}}, "weights['fraud:1']"),
        ({"weights": {"fraud:1": 100}, "shadow": "fraud:3"}, "shadow"),
        ({"weights": {"fraud:1": 100}, "shadow": {"percent": 5}}, "shadow.ref"),
        ({"weights": {"fraud:1": 100}, "shadow": {"ref": "fraud:3", "percent": "5"}},
         "shadow.percent"),
        ({"weights": {"fraud:1": 100}, "shadow": {"ref": "fraud:3", "pct": 5}}, "shadow.pct"),
        ({"weights": {"fraud:1": 100}, "revision": 1.5}, "revision"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_traffic(body)
        assert (caught.value.status, caught.value.field) == (400, field), body


def test_traffic_field_names_the_body_part() -> None:
    request = TrafficRequest(weights={"fraud:1": 90, "fraud:9": 10})
    assert traffic_field("spec.routes", request) == "weights"
    assert traffic_field("spec.routes[1]", request) == "weights['fraud:9']"
    assert traffic_field("spec.routes[0].weight", request) == "weights['fraud:1']"
    assert traffic_field("spec.routes[7]", request) == "weights"
    assert traffic_field("spec.shadow", request) == "shadow"
    assert traffic_field("spec.shadow.percent", request) == "shadow.percent"
    assert traffic_field("shadow", request) == "shadow.ref"  # ModelRef.parse of the shadow
    assert traffic_field("percent", request) == "shadow.percent"
    assert traffic_field("weights['x y']", request) == "weights['x y']"


def test_the_message_names_every_field_in_the_body_terms() -> None:
    """With several problems the message lists each as ``field`` names it, not the SDK
    paths (``spec.routes[0].weight``)."""
    request = TrafficRequest(weights={"fraud:1": 90, "fraud:9": 10})
    bad = ValidationError([FieldError("spec.routes[1]", "no version 9 of fraud"),
                           FieldError("spec.routes[0].weight", "must be at most 100"),
                           FieldError("spec.routes", "the weights sum to 110"),
                           FieldError("spec.shadow.percent", "150 is over 100"),
                           FieldError("", "and one more thing")], subject="overlay 'scoring'")
    error = api_error(bad, field_of=lambda path: traffic_field(path, request))
    assert (error.status, error.field) == (400, "weights['fraud:9']")
    assert error.message == (
        "invalid overlay 'scoring': 5 problems\n"
        "  - weights['fraud:9']: no version 9 of fraud\n"
        "  - weights['fraud:1']: must be at most 100\n"
        "  - weights: the weights sum to 110\n"
        "  - shadow.percent: 150 is over 100\n"
        "  - and one more thing")
    assert "spec." not in error.message
    one = api_error(ValidationError.at("spec.routes[0].weight", "too big"),
                    field_of=lambda path: traffic_field(path, request))
    assert (one.field, one.message) == ("weights['fraud:1']", "weights['fraud:1']: too big")


def test_api_error_maps_the_sdk_errors() -> None:
    bad = ValidationError([FieldError("spec.routes", "sum 90"), FieldError("x", "y")])
    assert api_error(bad).to_dict() == {"error": {"status": 400, "field": "spec.routes",
                                                  "message": str(bad)}}
    assert api_error(bad, field_of=lambda p: p.upper()).field == "SPEC.ROUTES"
    assert api_error(ValidationError("no path")).field is None
    config = api_error(ValidationError.at("OverlaySdk.home", "unsupported scheme"))
    assert (config.status, config.field) == (500, "OverlaySdk.home")
    assert (api_error(NotFoundError("no")).status, api_error(NotFoundError("no")).field) == (
        404, None)
    conflict = api_error(ConflictError("changed", expected=1, current=2))
    assert (conflict.status, conflict.field) == (409, "revision")
    assert api_error(BackendError("db down")).status == 502
    own = ApiError(404, "no revision", "to")
    assert api_error(own) is own
    boom = api_error(KeyError("secret detail"))
    assert boom.status == 500 and "secret detail" not in boom.message


def test_query_arguments() -> None:
    assert parse_limit(None) == 50 and parse_limit("7") == 7
    for text in ("0", "-1", "x", "1001"):
        with pytest.raises(ApiError) as caught:
            parse_limit(text)
        assert caught.value.field == "limit"
    assert parse_since(None, "15 minutes ago") == "15 minutes ago"
    assert parse_since("15m", "d") == "15 minutes ago"
    assert parse_since("2H", "d") == "2 hours ago"
    assert parse_since("1d", "d") == "1 days ago"
    assert parse_since("an hour ago", "d") == "an hour ago"
    with pytest.raises(ApiError):
        parse_since("0m", "d")
    assert parse_plane(None) is None and parse_plane("  ") is None
    assert parse_plane(" k8s://ctx/ns ") == "k8s://ctx/ns"



def test_parse_model_rollback() -> None:
    default = parse_model_rollback({})
    assert default == ModelRollbackRequest("previous", "serving", None)
    assert parse_model_rollback({"to": None, "alias": None, "reason": None}) == default
    assert parse_model_rollback({"reason": "  "}).reason is None  # an empty text field
    for to in ("previous", "3", 3, "C=0.1", "yesterday", "2026-11-25T10:00:00Z"):
        assert parse_model_rollback({"to": to}).to == to  # the SDK decides what it means
    request = parse_model_rollback({"to": 2, "alias": "champion", "reason": "bad drift"})
    assert (request.to, request.alias, request.reason) == (2, "champion", "bad drift")
    for body, field in [
        ([], "body"), ({"to": True}, "to"), ({"to": 2.0}, "to"), ({"to": ["2"]}, "to"),
        ({"to": ""}, "to"), ({"to": "x" * 500}, "to"), ({"alias": 3}, "alias"),
        ({"reason": 5}, "reason"), ({"version": 2}, "version"), ({"message": "x"}, "message"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_model_rollback(body)
        assert (caught.value.status, caught.value.field) == (400, field), body


def test_aliases_payload_from_the_alias_history() -> None:
    import pandas as pd

    history = pd.DataFrame([
        {"time": pd.Timestamp(T0), "alias": "serving", "version": "1", "previous": None,
         "author": "ana", "reason": None},
        {"time": pd.Timestamp(T0), "alias": "serving", "version": None, "previous": "1",
         "author": "bo", "reason": "retired"},
    ], dtype=object)
    history["time"] = pd.to_datetime(history["time"], utc=True)
    assert aliases_payload("fraud", {"serving": "3", "champion": "2"},
                           history.to_dict("records")) == {
        "model": "fraud",
        "aliases": {"champion": "2", "serving": "3"},
        "history": [
            {"alias": "serving", "from": None, "to": "1",
             "time": "2026-05-01T09:30:00+00:00", "author": "ana", "reason": None},
            {"alias": "serving", "from": "1", "to": None,
             "time": "2026-05-01T09:30:00+00:00", "author": "bo", "reason": "retired"},
        ]}
