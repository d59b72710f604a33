"""pydantic and the CRD (OpenAPI schema + CEL rules run with cel-python) give one verdict.

The corpus is ``tests/crd_corpus.py``; the offline API-server check is
``overlay_sdk.crd_cel``. Sample CRs are checked against the checked-in CRD file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import re2  # type: ignore[import-untyped]
import yaml

from overlay_sdk.crd import HTTP_URL, validation_rules
from overlay_sdk.crd_cel import (
    EXTENSIONS,
    cel_errors,
    crd_errors,
    evaluate,
    rule_sites,
    schema_errors,
)
from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import Host, parse_overlay
from tests.crd_corpus import CASES, FULL, STATUS, Case, overlay, put

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "deploy" / "crds" / "aioverlay.yaml"


def pydantic_errors(doc: Any) -> list[str]:
    try:
        parse_overlay(doc)
    except ValidationError as err:
        return [e.path for e in err.errors] or ["(document)"]
    return []


# ---------------------------------------------------------------------------------------
# The corpus


def test_corpus_is_large_and_well_formed() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert sum(c.valid for c in CASES) >= 15 and sum(not c.valid for c in CASES) >= 30
    for case in CASES:
        assert bool(case.only) == bool(case.why), f"{case.id}: `only` needs `why`, and back"
        if not case.crd_valid:
            assert case.crd_error, f"{case.id}: say which CRD error is expected"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pydantic_and_crd_give_the_same_verdict(case: Case) -> None:
    pyd = pydantic_errors(case.doc)
    crd = crd_errors(case.doc)
    assert (not pyd) == case.valid, f"pydantic: {pyd}"
    assert (not crd) == case.crd_valid, f"CRD: {[str(e) for e in crd]}"
    if crd:
        messages = [e.message for e in crd]
        assert any(case.crd_error in m for m in messages), messages
    # A rule that cannot be evaluated refuses the object on both sides, but cel-python and
    # cel-go differ in places (no heterogeneous equality here: "3" == 3 is an error, not
    # false): only the cases written for it may hit one.
    unevaluated = [e.message for e in crd if "could not be evaluated" in e.message]
    assert not unevaluated or "could not be evaluated" in case.crd_error, unevaluated
    if case.only is None and crd and all(e.rule for e in crd):
        # Refused by CEL rules alone: each names a field at or above one pydantic names.
        for error in crd:
            assert any(p == error.path or p.startswith((f"{error.path}.", f"{error.path}["))
                       for p in pyd), (error.path, pyd)


def test_every_cel_rule_is_exercised_both_ways() -> None:
    """Each rule refuses some case (alone among the rules) and passes on every valid one."""
    refused_by: dict[str, set[str]] = {}
    for case in CASES:
        errors = cel_errors(case.doc)
        if case.crd_valid:
            assert errors == [], (case.id, errors)
        for error in errors:
            assert error.rule is not None
            refused_by.setdefault(error.rule, set()).add(case.id)
    for site in rule_sites():
        assert refused_by.get(site.rule["rule"]), f"no corpus case breaks {site.path}: {site.rule}"


def test_pydantic_only_cases_name_rules_the_api_server_cannot_check() -> None:
    only = {c.id: c.only for c in CASES if c.only}
    assert {"timeout-whole-float", "more-than-64-labels", "server-set-metadata"} <= set(only)
    assert all(c.only == "crd" for c in CASES if c.only and c.doc.get("status")), (
        "the CRD is stricter than the SDK on status only"
    )


# ---------------------------------------------------------------------------------------
# The rules themselves

STANDARD_CEL = {
    "has", "size", "all", "exists", "exists_one", "map", "filter", "matches", "startsWith",
    "endsWith", "contains", "string", "int", "uint", "double", "bool", "type", "dyn",
}


def test_rules_use_standard_cel_and_only_the_shimmed_extensions() -> None:
    for site in rule_sites():
        for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", site.rule["rule"]):
            assert name in STANDARD_CEL or name in EXTENSIONS, (site.path, name)
    used = {n for s in rule_sites() for n in re.findall(r"\.(\w+)\(", s.rule["rule"])}
    assert set(EXTENSIONS) <= used, "shim only what the CRD uses"


def _bounded(schema: Mapping[str, Any], path: str) -> Iterator[str]:
    """Paths below ``schema`` the CEL cost estimator could not bound."""
    kind = schema.get("type")
    if kind == "array":
        if "maxItems" not in schema:
            yield f"{path} (maxItems)"
        yield from _bounded(schema["items"], f"{path}[]")
    elif kind == "object":
        for name, sub in (schema.get("properties") or {}).items():
            yield from _bounded(sub, f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), Mapping):
            if "maxProperties" not in schema:
                yield f"{path} (maxProperties)"
            yield from _bounded(schema["additionalProperties"], f"{path}{{}}")
    elif (kind == "string" or schema.get("x-kubernetes-int-or-string")) and not (
        "maxLength" in schema or "enum" in schema
    ):
        yield f"{path} (maxLength)"


def test_everything_a_rule_can_reach_is_bounded_for_the_cost_estimator() -> None:
    for site in rule_sites():
        assert list(_bounded(site.schema, site.path)) == [], site.path


def test_rules_have_messages_reasons_and_field_paths_that_exist() -> None:
    reasons = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired",
               "FieldValueDuplicate"}
    sites = rule_sites()
    assert len(sites) == sum(len(r) for r in validation_rules().values())
    for site in sites:
        rule = site.rule
        assert set(rule) <= {"rule", "message", "fieldPath", "reason"}, rule
        assert rule["message"] and "\n" not in rule["message"]
        assert rule.get("reason", "FieldValueInvalid") in reasons
        if "fieldPath" in rule:
            field = rule["fieldPath"].removeprefix(".")
            assert field in site.schema["properties"], (site.path, field)


def test_the_spec_rules_sit_where_the_issue_asks() -> None:
    rules = {s.path: [r["rule"] for r in validation_rules()[s.path]] for s in rule_sites()}
    assert "self.map(r, r.weight).sum() == 100" in rules[".spec.routes"]
    assert any("self.shadow" in r and "routes.exists" in r for r in rules[".spec"])


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("[].sum() == 0", True),
        ("[1, 2, 97].sum() == 100", True),
        ("[0.5, 0.25].sum() == 0.75", True),
        ("[9223372036854775807, 1].sum() > 0", "overflow"),
        ("[1, 2.5].sum() > 0", "no such overload"),
    ],
)
def test_sum_shim_follows_the_kubernetes_list_library(rule: str, expected: Any) -> None:
    verdict = evaluate(rule, None, {})
    if isinstance(expected, bool):
        assert verdict is expected
    else:
        assert isinstance(verdict, str) and expected in verdict


def test_a_field_the_api_server_cannot_convert_fails_the_rules_that_read_it() -> None:
    # A whole float passes the integer schema check but is no CEL int: has() is true,
    # reading it is an error (k8s.io/apiserver UnstructuredToVal).
    slo = {"type": "object", "properties": {"p99Ms": {"type": "integer"}}}
    assert evaluate("has(self.p99Ms)", {"p99Ms": 300.0}, slo) is True
    verdict = evaluate("self.p99Ms <= 800", {"p99Ms": 300.0}, slo)
    assert isinstance(verdict, str) and "overload" in verdict


# ---------------------------------------------------------------------------------------
# host.url: the CRD's pattern against the SDK's urlsplit check

URLS = [
    "http://crm.internal:8080", "https://crm", "HTTP://X", "hTTps://x/y?z#w", "http://x:",
    "http://x:0", "http://x:65535", "http://x:65536", "http://x:00080", "http://x:-1",
    "http://x:+1", "http://x:1 ", "http://x:\u0663", "http://[::1]", "http://[::1]:80/x",
    "http://[fe80::1%25eth0]/", "http://[::1", "http://::1]/", "http://[1.2.3.4]/",
    "http://[v1.x]/", "http://[x]/", "http://x]/", "http://u@h", "http://u:p@h:1/",
    "http://u@p@h/", "http://@h", "http://u@/", "http:///x", "http://", "https:", "http:x",
    "ftp://x", "file:///etc", "x", "/x", "  http://x", "\thttp://x", "http://x y/",
    "http://x\n/", "http://x/\n", "http://x?q", "http://x#f", "http://x:80:90",
    "http://\u00e9.example/", "http://x%20y",
]
# Where the pattern is an approximation (the SDK is right; both rare in practice).
URL_DIVERGENCES = {
    "http://[::::]/": (False, True),  # an IPv6 literal's syntax: Python's ipaddress checks it
    "ht\ttp://x": (True, False),  # Python drops tabs and newlines anywhere, even the scheme
}


def _sdk_accepts(url: str) -> bool:
    try:
        Host.model_validate({"url": url})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("url", URLS)
def test_url_pattern_agrees_with_the_sdk(url: str) -> None:
    assert (re2.search(HTTP_URL, url) is not None) == _sdk_accepts(url)


@pytest.mark.parametrize(("url", "verdicts"), URL_DIVERGENCES.items())
def test_url_pattern_known_divergences(url: str, verdicts: tuple[bool, bool]) -> None:
    assert (_sdk_accepts(url), re2.search(HTTP_URL, url) is not None) == verdicts


# ---------------------------------------------------------------------------------------
# Sample CRs against the checked-in CRD

DESIGN_SAMPLE = """
apiVersion: overlays.aioverlay.dev/v1alpha1
kind: AIOverlay
metadata: {name: sales-copilot}
spec:
  host: {url: http://crm.internal:8080}
  mode: overlay
  routes:
    - {model: copilot, version: "3", weight: 80}
    - {model: copilot, version: "4", weight: 20}
  shadow: {model: copilot, version: "5", percent: 100}
  match: {method: POST, path: "/api/score"}
  sticky: {header: x-user-id}
  injection: {kind: chat-bubble, selector: "body", path: "/crm/*"}
  slo: {timeoutMs: 800, p99Ms: 300}
  budget: {usdPerDay: 50}
  placement: {tier: edge, gpu: {memoryGiB: 6, fraction: 0.25}}
  scaling: {minReplicas: 0, maxReplicas: 8, predictive: true}
"""


@pytest.fixture(scope="module")
def checked_in_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CHECKED_IN.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


SAMPLES = {
    "design": yaml.safe_load(DESIGN_SAMPLE),
    "minimal": overlay(),
    "full-with-status": {**FULL, "status": STATUS},
    "yaml-integer-version": yaml.safe_load(
        DESIGN_SAMPLE.replace('version: "3"', "version: 3")),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_crs_validate_against_the_checked_in_crd(
    name: str, checked_in_schema: dict[str, Any]
) -> None:
    sample = SAMPLES[name]
    assert schema_errors(sample, checked_in_schema) == []
    assert cel_errors(sample, checked_in_schema) == []
    parse_overlay(sample)  # and the SDK agrees


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("spec.routes[0].weight", 101, "spec.routes[0].weight"),
        ("spec.mode", "canary", "spec.mode"),
        ("spec.slo.timeoutMs", 0, "spec.slo.timeoutMs"),
        ("spec.placement.tier", "moon", "spec.placement.tier"),
        ("spec.shadow.percent", "all", "spec.shadow.percent"),
        ("spec.host.url", "crm.internal", "spec.host.url"),
        ("spec.routes[1].version", "v4", "spec.routes[1].version"),
        ("metadata.name", "Sales_Copilot", "metadata.name"),
        ("spec.canary", True, "spec"),
    ],
)
def test_invalid_sample_crs_fail_on_schema_rules(
    path: str, value: Any, where: str, checked_in_schema: dict[str, Any]
) -> None:
    bad = put(SAMPLES["design"], path, value)
    assert [e.path for e in schema_errors(bad, checked_in_schema)] == [where]
    with pytest.raises(ValidationError):
        parse_overlay(bad)


def test_unknown_fields_are_pruned_without_strict_field_validation(
    checked_in_schema: dict[str, Any],
) -> None:
    sample = put(SAMPLES["design"], "spec.canary", True)
    assert schema_errors(sample, checked_in_schema, strict=False) == []
    assert schema_errors(sample, checked_in_schema, strict=True) != []
