"""Validation rules of the AIOverlay spec: every rule, with the field path and rule named."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import (
    API_GROUP,
    API_VERSION,
    KIND,
    MAX_ROUTES,
    AIOverlay,
    ModelRef,
    parse_overlay,
    parse_spec,
)


def doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {"name": "sales-copilot"},
        "spec": {
            "host": {"url": "http://crm.internal:8080"},
            "routes": [
                {"model": "copilot", "version": "3", "weight": 80},
                {"model": "copilot", "version": "4", "weight": 20},
            ],
        },
    }
    base["spec"].update(spec)
    return base


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_overlay(data)
    return [str(e) for e in info.value.errors]


def test_valid_full_document_round_trips() -> None:
    data = doc(
        mode="overlay",
        shadow={"model": "copilot", "version": "5", "percent": 10},
        match={"method": "post", "path": "/api/score"},
        sticky={"header": "x-user-id"},
        injection={"kind": "chat-bubble", "selector": "body", "path": "/crm/*"},
        slo={"timeoutMs": 800, "p99Ms": 300},
        budget={"usdPerDay": 50},
        placement={"tier": "edge", "gpu": {"memoryGiB": 6, "fraction": 0.25}},
        scaling={"minReplicas": 0, "maxReplicas": 8, "predictive": True},
    )
    overlay = parse_overlay(data)
    assert overlay.name == "sales-copilot"
    assert overlay.spec.match is not None and overlay.spec.match.method == "POST"
    assert overlay.spec.slo is not None and overlay.spec.slo.timeout_ms == 800
    assert overlay.spec.weights() == {"copilot:3": 80, "copilot:4": 20}
    again = parse_overlay(overlay.to_dict())
    assert again == overlay
    assert parse_overlay(overlay.to_yaml()) == overlay
    assert overlay.to_dict()["apiVersion"] == f"{API_GROUP}/{API_VERSION}"
    assert overlay.to_dict()["kind"] == KIND


def test_integer_versions_from_yaml_become_strings() -> None:
    overlay = parse_overlay(
        "metadata: {name: a}\nspec:\n  host: {url: 'http://h'}\n"
        "  routes: [{model: m, version: 3, weight: 100}]\n"
    )
    assert overlay.spec.routes[0].version == "3"


@pytest.mark.parametrize(
    "name", ["Sales", "sales_copilot", "-sales", "sales-", "", "a" * 64, "sales.copilot"]
)
def test_name_must_be_dns_label(name: str) -> None:
    data = doc()
    data["metadata"]["name"] = name
    (err,) = errors_of(data)
    assert err.startswith("metadata.name: ")


def test_weights_must_sum_to_100_and_message_names_field_and_rule() -> None:
    data = doc()
    data["spec"]["routes"][1]["weight"] = 15
    assert errors_of(data) == ["spec.routes: weights sum to 95, must sum to 100"]


@pytest.mark.parametrize("weight", [-1, 101, 50.5, "50", True, None])
def test_weights_are_integers_0_to_100(weight: Any) -> None:
    data = doc()
    data["spec"]["routes"] = [
        {"model": "copilot", "version": "3", "weight": weight},
        {"model": "copilot", "version": "4", "weight": 50},
    ]
    errs = errors_of(data)
    assert any(e.startswith("spec.routes[0].weight: ") for e in errs), errs


def test_zero_weight_route_is_allowed() -> None:
    data = doc()
    data["spec"]["routes"] = [
        {"model": "copilot", "version": "3", "weight": 100},
        {"model": "copilot", "version": "4", "weight": 0},
    ]
    assert parse_overlay(data).spec.routes[1].weight == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("copilot:3", ModelRef("copilot", version="3")),
        ("copilot@champion", ModelRef("copilot", alias="champion")),
        ("fraud.v2-x:12", ModelRef("fraud.v2-x", version="12")),
    ],
)
def test_model_reference_forms(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected
    assert str(ModelRef.parse(text)) == text


@pytest.mark.parametrize(
    "text", ["copilot", "copilot:", "copilot:0", "copilot:x", "copilot@", "a:1:2", "co pilot:1",
             "copilot@1champ", ":3", "@a", "copilot:3@a"]
)
def test_bad_model_references_are_refused(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        ModelRef.parse(text, field="routes")
    assert all(p == "routes" for p in info.value.paths)
    assert "name:version" in str(info.value) or "must" in str(info.value)


def test_route_needs_version_or_alias() -> None:
    data = doc()
    del data["spec"]["routes"][0]["version"]
    assert errors_of(data) == ['spec.routes[0].version: give a version (such as "3") or an alias']


def test_duplicate_routes_are_refused() -> None:
    data = doc()
    data["spec"]["routes"][1]["version"] = "3"
    (err,) = errors_of(data)
    assert err.startswith("spec.routes[1]: copilot:3 is already routed at routes[0]")


def test_duplicate_alias_routes_are_refused() -> None:
    data = doc()
    data["spec"]["routes"] = [
        {"model": "copilot", "alias": "champion", "weight": 50},
        {"model": "copilot", "alias": "champion", "weight": 50},
    ]
    (err,) = errors_of(data)
    assert err.startswith("spec.routes[1]: ")


def test_shadow_version_is_never_a_primary_route() -> None:
    data = doc(shadow={"model": "copilot", "version": "4"})
    (err,) = errors_of(data)
    assert err.startswith("spec.shadow: copilot:4 is also a primary route (routes[1])")


@pytest.mark.parametrize("percent", [-0.1, 100.5, float("nan"), "all", "50", True])
def test_shadow_percent_0_to_100(percent: Any) -> None:
    data = doc(shadow={"model": "copilot", "version": "5", "percent": percent})
    (err,) = errors_of(data)
    assert err.startswith("spec.shadow.percent: ")


def test_shadow_percent_fraction_allowed() -> None:
    overlay = parse_overlay(doc(shadow={"model": "copilot", "version": "5", "percent": 0.5}))
    assert overlay.spec.shadow is not None and overlay.spec.shadow.percent == 0.5


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("slo", {"timeoutMs": 0}, "spec.slo.timeoutMs"),
        ("slo", {"timeoutMs": -5}, "spec.slo.timeoutMs"),
        ("slo", {"timeoutMs": 100, "p99Ms": 0}, "spec.slo.p99Ms"),
        ("slo", {"timeoutMs": 100, "p99Ms": 200}, "spec.slo.p99Ms"),
        ("budget", {"usdPerDay": 0}, "spec.budget.usdPerDay"),
        ("budget", {"usdPerDay": -1}, "spec.budget.usdPerDay"),
        ("budget", {"usdPerDay": float("inf")}, "spec.budget.usdPerDay"),
        ("budget", {"usdPerDay": "50"}, "spec.budget.usdPerDay"),
        ("placement", {"gpu": {"memoryGiB": "6"}}, "spec.placement.gpu.memoryGiB"),
        ("placement", {"gpu": {"memoryGiB": 0}}, "spec.placement.gpu.memoryGiB"),
        ("placement", {"gpu": {"memoryGiB": 4, "fraction": 1.5}}, "spec.placement.gpu.fraction"),
        ("placement", {"tier": "moon"}, "spec.placement.tier"),
        ("scaling", {"minReplicas": 3, "maxReplicas": 2}, "spec.scaling.minReplicas"),
        ("scaling", {"minReplicas": -1}, "spec.scaling.minReplicas"),
        ("sticky", {}, "spec.sticky"),
        ("sticky", {"header": "x-user", "cookie": "sid"}, "spec.sticky"),
        ("sticky", {"header": "bad header"}, "spec.sticky.header"),
        ("host", {"url": "ftp://crm"}, "spec.host.url"),
        ("host", {"url": "not a url"}, "spec.host.url"),
        ("host", {"url": "http://crm:99999"}, "spec.host.url"),
        ("mode", "turbo", "spec.mode"),
        ("match", {"method": "FETCH", "path": "/x"}, "spec.match.method"),
        ("match", {"path": "no-slash"}, "spec.match.path"),
        ("injection", {"kind": "popup"}, "spec.injection.kind"),
    ],
)
def test_field_rules_name_their_path(field: str, value: Any, path: str) -> None:
    errs = errors_of(doc(**{field: value}))
    assert any(e.startswith(path + ": ") for e in errs), errs


def test_mode_shadow_needs_match_and_overlay_needs_injection() -> None:
    assert errors_of(doc(mode="shadow")) == [
        "spec.match: required when mode is shadow: say which host requests to fork"
    ]
    assert errors_of(doc(mode="overlay")) == [
        "spec.injection: required when mode is overlay: say what to inject where"
    ]


def test_list_sizes_are_bounded() -> None:
    routes = [{"model": "m", "version": str(i + 1), "weight": 0} for i in range(MAX_ROUTES + 1)]
    routes[0]["weight"] = 100
    (err,) = errors_of(doc(routes=routes))
    assert err.startswith("spec.routes: ")
    assert errors_of(doc(routes=[]))[0].startswith("spec.routes: ")
    data = doc()
    data["metadata"]["labels"] = {f"k{i}": "v" for i in range(65)}
    assert errors_of(data) == ["metadata.labels: has 65 items, at most 64 allowed"]


def test_unknown_fields_are_rejected_with_allowed_names() -> None:
    data = doc(slo={"timeoutMS": 100})
    (err,) = errors_of(data)
    assert err.startswith("spec.slo.timeoutMS: unknown field; allowed fields: timeoutMs, p99Ms")
    data = doc()
    data["spec"]["routes"][0]["wieght"] = 1
    assert any(e.startswith("spec.routes[0].wieght: unknown field") for e in errors_of(data))
    data = doc()
    data["extra"] = 1
    assert errors_of(data) == [
        "extra: unknown field; allowed fields: apiVersion, kind, metadata, spec, status"
    ]


def test_several_problems_are_all_reported() -> None:
    data = doc(mode="turbo", slo={"timeoutMs": -1})
    data["metadata"]["name"] = "Bad"
    errs = errors_of(data)
    assert {e.split(":")[0] for e in errs} == {"metadata.name", "spec.mode", "spec.slo.timeoutMs"}


def test_parse_spec_paths_start_with_spec() -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec({"host": {"url": "http://h"}, "routes": [{"model": "m", "weight": 100}]})
    assert info.value.paths == ["spec.routes[0].version"]


def test_wrong_api_version_and_kind() -> None:
    data = doc()
    data["apiVersion"] = "v1"
    data["kind"] = "Pod"
    assert {e.split(":")[0] for e in errors_of(data)} == {"apiVersion", "kind"}


def test_invalid_yaml_text() -> None:
    with pytest.raises(ValidationError, match="not valid YAML"):
        parse_overlay("spec: [unclosed")


def test_spec_objects_are_immutable() -> None:
    overlay = parse_overlay(doc())
    with pytest.raises(Exception, match="frozen"):
        overlay.spec.routes[0].weight = 5  # type: ignore[misc]


# ---- property: any input either validates or raises ValidationError naming a field path ----

KNOWN_ROOTS = {"(document)", "apiVersion", "kind", "metadata", "spec", "status"}

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
names = st.sampled_from(["copilot", "fraud", "m", "Bad Name", ""]) | st.text(max_size=10)
versions = st.sampled_from(["1", "2", "3", 3, "0", "x", None]) | junk
weights = st.integers(-5, 105) | st.sampled_from([0, 50, 100]) | junk


@st.composite
def maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    """Usually a well-formed value, sometimes junk, sometimes absent."""
    choice = draw(st.integers(0, 9))
    if choice < 7:
        return draw(strategy)
    if choice < 9:
        return draw(junk)
    return _ABSENT


_ABSENT = object()


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not _ABSENT:
        target[key] = value


@st.composite
def route(draw: st.DrawFn) -> Any:
    r: dict[str, Any] = {}
    _put(r, "model", draw(maybe(names)))
    _put(r, "version", draw(maybe(versions)))
    if draw(st.booleans()):
        _put(r, "alias", draw(maybe(st.sampled_from(["champion", "x y", "_a"]))))
    _put(r, "weight", draw(maybe(weights)))
    if draw(st.integers(0, 20)) == 0:
        r[draw(st.text(max_size=6))] = draw(junk)
    return r


@st.composite
def documents(draw: st.DrawFn) -> Any:
    spec: dict[str, Any] = {}
    _put(spec, "host", draw(maybe(st.fixed_dictionaries(
        {"url": st.sampled_from(["http://h:1", "https://x", "ftp://y", "http://:0", "h"])}))))
    _put(spec, "mode", draw(maybe(st.sampled_from(["passthrough", "shadow", "overlay", "x"]))))
    _put(spec, "routes", draw(maybe(st.lists(route(), max_size=4))))
    if draw(st.booleans()):
        shadow = draw(route())
        if isinstance(shadow, dict):
            shadow.pop("weight", None)
            _put(shadow, "percent", draw(maybe(st.floats(-10, 110))))
        spec["shadow"] = shadow
    for key, strategy in [
        ("slo", st.fixed_dictionaries({"timeoutMs": st.integers(-5, 1000)})),
        ("budget", st.fixed_dictionaries({"usdPerDay": st.floats(-1, 100)})),
        ("sticky", st.fixed_dictionaries({"header": st.text(max_size=5)})),
        ("match", st.fixed_dictionaries({"path": st.text(max_size=5)})),
        ("scaling", st.fixed_dictionaries(
            {"minReplicas": st.integers(-1, 5), "maxReplicas": st.integers(-1, 5)})),
        ("placement", st.fixed_dictionaries(
            {"gpu": st.fixed_dictionaries({"memoryGiB": st.floats(-1, 2000)})})),
    ]:
        if draw(st.integers(0, 3)) == 0:
            _put(spec, key, draw(maybe(strategy)))
    data: dict[str, Any] = {}
    _put(data, "metadata", draw(maybe(st.fixed_dictionaries({"name": names}))))
    _put(data, "spec", draw(maybe(st.just(spec))))
    if draw(st.integers(0, 10)) == 0:
        return draw(junk)
    return data


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents that keep every rule: any number of routes, weights summing to 100."""
    n = draw(st.integers(1, MAX_ROUTES))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    versions = draw(st.lists(st.integers(1, 10**6), min_size=n + 1, max_size=n + 1,
                             unique=True))
    spec: dict[str, Any] = {
        "host": {"url": draw(st.sampled_from(["http://h:8080", "https://crm.example"]))},
        "routes": [{"model": "m", "version": str(v), "weight": w}
                   for v, w in zip(versions, weights, strict=False)],
    }
    if draw(st.booleans()):
        spec["shadow"] = {"model": "m", "version": str(versions[-1]),
                          "percent": draw(st.floats(0, 100))}
    mode = draw(st.sampled_from(["passthrough", "shadow", "overlay"]))
    spec["mode"] = mode
    if mode == "shadow" or draw(st.booleans()):
        spec["match"] = {"path": "/api/score"}
    if mode == "overlay" or draw(st.booleans()):
        spec["injection"] = {"kind": "chat-bubble"}
    if draw(st.booleans()):
        timeout = draw(st.integers(1, 600_000))
        spec["slo"] = {"timeoutMs": timeout, "p99Ms": draw(st.integers(1, timeout))}
    name = draw(st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z"))
    return {"metadata": {"name": name}, "spec": spec}


@st.composite
def one_field_broken(draw: st.DrawFn) -> Any:
    """A valid document with one value replaced by junk, somewhere in the tree."""
    data = draw(valid_documents())
    node: Any = data
    path: list[Any] = []
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        path.append(key)
        if not isinstance(node[key], dict | list) or draw(st.integers(0, 2)) == 0:
            node[key] = draw(junk)
            break
        node = node[key]
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_documents())
def test_random_valid_documents_validate_and_round_trip(data: dict[str, Any]) -> None:
    overlay = parse_overlay(data)
    assert sum(r.weight for r in overlay.spec.routes) == 100
    assert parse_overlay(overlay.to_dict()) == overlay


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(documents(), valid_documents(), one_field_broken()))
def test_random_documents_validate_or_name_a_field(data: Any) -> None:
    original = copy.deepcopy(data)
    try:
        overlay = parse_overlay(data)
        event("valid")
    except ValidationError as err:
        event("invalid")
        assert err.errors
        for field_error in err.errors:
            root = re.split(r"[.\[]", field_error.path, maxsplit=1)[0]
            unknown_key = isinstance(data, dict) and field_error.message.startswith("unknown")
            assert root in KNOWN_ROOTS or (
                unknown_key and any(field_error.path.startswith(str(k)) for k in data)
            ), field_error
            assert field_error.message
    else:
        assert isinstance(overlay, AIOverlay)
        assert sum(r.weight for r in overlay.spec.routes) == 100
    assert data == original or data != data  # input never mutated (NaN != NaN allowed)


@pytest.mark.parametrize(
    ("labels", "path"),
    [({"team": "x" * 64}, "metadata.labels.team"), ({"bad key!": "v"}, "metadata.labels.bad key!"),
     ({"a/" * 3 + "b": "v"}, "metadata.labels.a/a/a/b")],
)
def test_labels_follow_kubernetes_limits(labels: dict[str, str], path: str) -> None:
    data = doc()
    data["metadata"]["labels"] = labels
    (err,) = errors_of(data)
    assert err.startswith(path + ": ")


def test_labels_and_annotations_within_limits_are_kept() -> None:
    data = doc()
    data["metadata"]["labels"] = {"app.kubernetes.io/name": "crm", "tier": ""}
    data["metadata"]["annotations"] = {"note": "x" * 1000}
    assert parse_overlay(data).metadata.labels == {"app.kubernetes.io/name": "crm", "tier": ""}
    data["metadata"]["annotations"] = {"note": "x" * 300_000}
    assert errors_of(data)[0].startswith("metadata.annotations: total ")
