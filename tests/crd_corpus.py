"""AIOverlay documents, valid and invalid, on which pydantic and the CRD must agree.

Each :class:`Case` is one whole document and the verdict of ``overlay_sdk.spec``
(``valid``). The CRD (schema + CEL rules, ``overlay_sdk.crd_cel``) must give the same
verdict, except for cases marked ``only``: ``"pydantic"`` when the SDK refuses what the
CRD cannot check (``why`` says what, and who else checks it), ``"crd"`` when the CRD is
stricter (the status, written by the operator, in the shape of ``metav1.Condition``).
``rule`` names the rule the case is about; ``crd_error`` is a fragment of the CRD's
message (for CEL rules: the rule's message), so a case fails for the reason it was
written for. Used by ``tests/test_crd_cel.py``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

API = "overlays.aioverlay.dev/v1alpha1"


@dataclass(frozen=True)
class Case:
    id: str
    doc: dict[str, Any]
    valid: bool
    rule: str
    crd_error: str = ""
    only: Literal["pydantic", "crd"] | None = None
    why: str = ""

    @property
    def crd_valid(self) -> bool:
        """The CRD's expected verdict."""
        if self.only == "pydantic":
            return True
        if self.only == "crd":
            return False
        return self.valid


def overlay(**spec: Any) -> dict[str, Any]:
    """A valid passthrough overlay (two routes, 80/20) with ``spec`` fields replaced."""
    doc: dict[str, Any] = {
        "apiVersion": API,
        "kind": "AIOverlay",
        "metadata": {"name": "sales-copilot"},
        "spec": {
            "host": {"url": "http://crm.internal:8080"},
            "routes": [
                {"model": "copilot", "version": "3", "weight": 80},
                {"model": "copilot", "version": "4", "weight": 20},
            ],
        },
    }
    doc["spec"].update(spec)
    return doc


def put(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``spec.routes[0].weight`` style ``path`` set (or deleted when
    ``value`` is :data:`DELETE`)."""
    doc = copy.deepcopy(doc)
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    target: Any = doc
    for part in parts[:-1]:
        if isinstance(part, str) and part not in target:
            target[part] = {}
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return doc


DELETE = object()


def route(version: Any = None, weight: int = 100, model: str = "copilot", **more: Any) -> Any:
    out: dict[str, Any] = {"model": model, "weight": weight, **more}
    if version is not None:
        out["version"] = version
    return out


FULL = overlay(  # the example of DESIGN.md, every section set
    mode="overlay",
    shadow={"model": "copilot", "version": "5", "percent": 100},
    match={"method": "POST", "path": "/api/score"},
    sticky={"header": "x-user-id"},
    injection={"kind": "chat-bubble", "selector": "body", "path": "/crm/*"},
    slo={"timeoutMs": 800, "p99Ms": 300},
    budget={"usdPerDay": 50},
    drift={"window": "1h", "consecutive": 3, "alpha": 0.05},
    telemetry={"sampleRate": 0.5, "redact": ["email", "ssn"], "retentionDays": 30},
    placement={"tier": "edge", "gpu": {"memoryGiB": 6, "fraction": 0.25}},
    scaling={"minReplicas": 0, "maxReplicas": 8, "predictive": True},
)

STATUS = {
    "observedGeneration": 3,
    "revision": 7,
    "appliedAt": "2026-05-01T12:00:00Z",
    "endpoints": {"invoke": "http://sales-copilot.overlays.svc:8080/invoke"},
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "RoutesApplied", "message": "",
         "lastTransitionTime": "2026-05-01T12:00:00Z", "observedGeneration": 3},
        {"type": "RoutesApplied", "status": "True", "reason": "Applied",
         "message": "copilot:3=80 copilot:4=20", "lastTransitionTime": "2026-05-01T12:00:00Z"},
    ],
}

SIXTEEN = [route(str(v), 10 if v <= 4 else 5, model=f"m{v}") for v in range(1, 17)]  # 40+60

CASES: list[Case] = [
    # -- valid documents ------------------------------------------------------------------
    Case("minimal", overlay(routes=[route("3")]), True, "schema"),
    Case("design-example", FULL, True, "schema"),
    Case("shadow-mode-with-match", overlay(mode="shadow", match={"path": "/api/score"}),
         True, "mode-needs-match"),
    Case("overlay-mode-with-injection", overlay(mode="overlay", injection={"kind": "chat-bubble"}),
         True, "mode-needs-injection"),
    Case("routes-by-alias", overlay(routes=[route(alias="champion", weight=90),
                                            route(alias="challenger", weight=10)],
                                    shadow={"model": "copilot", "alias": "canary"}),
         True, "version-or-alias"),
    Case("same-alias-resolved-to-two-versions",
         overlay(routes=[route("3", 50, alias="champion"), route("4", 50, alias="champion")]),
         True, "routes-unique"),
    Case("shadow-alias-vs-resolved-route",
         overlay(routes=[route("3", alias="champion")],
                 shadow={"model": "copilot", "alias": "champion"}),
         True, "shadow-not-route"),
    Case("integer-versions-from-yaml", overlay(routes=[route(3, 50), route(4, 50)],
                                               shadow={"model": "copilot", "version": 5}),
         True, "version-int-or-string"),
    Case("zero-weight-route", overlay(routes=[route("3", 100), route("4", 0)]),
         True, "weights-sum"),
    Case("sixteen-routes", overlay(routes=SIXTEEN), True, "routes-max-items"),
    Case("same-version-other-model",
         overlay(routes=[route("3", 50), route("3", 50, model="scorer")]), True, "routes-unique"),
    Case("shadow-other-version", overlay(shadow={"model": "copilot", "version": "9"}),
         True, "shadow-not-route"),
    Case("shadow-fractional-percent",
         overlay(shadow={"model": "copilot", "version": "9", "percent": 12.5}),
         True, "shadow-percent"),
    Case("lower-case-method", overlay(mode="shadow", match={"method": "post", "path": "/x"}),
         True, "match-method"),
    Case("sticky-cookie", overlay(sticky={"cookie": "session"}), True, "sticky-one-of"),
    Case("p99-equals-timeout", overlay(slo={"timeoutMs": 500, "p99Ms": 500}),
         True, "p99-within-timeout"),
    Case("p99-within-default-timeout", overlay(slo={"p99Ms": 800}), True, "p99-within-timeout"),
    Case("scaling-defaults", overlay(scaling={"predictive": True}), True, "scaling-ordered"),
    Case("scaling-min-equals-max", overlay(scaling={"minReplicas": 4, "maxReplicas": 4}),
         True, "scaling-ordered"),
    Case("nulls-are-absent",
         overlay(shadow=None, slo=None,
                 routes=[{"model": "copilot", "version": None, "alias": "champion",
                          "weight": 100}]),
         True, "nulls"),
    Case("https-upper-case-scheme", overlay(host={"url": "HTTPS://CRM.example.com/app?x=1"}),
         True, "host-url"),
    Case("ipv6-host-and-port", overlay(host={"url": "http://[::1]:8080/crm"}), True, "host-url"),
    Case("userinfo-and-port-zero", overlay(host={"url": "http://user:pw@crm:0/"}),
         True, "host-url"),
    Case("leading-space-url", overlay(host={"url": " http://crm.internal"}), True, "host-url"),
    Case("full-status", {**FULL, "status": STATUS}, True, "status"),
    # -- invalid: routes ------------------------------------------------------------------
    Case("weights-sum-95", overlay(routes=[route("3", 80), route("4", 15)]), False,
         "weights-sum", "must sum to 100"),
    Case("weights-sum-110", overlay(routes=[route("3", 60), route("4", 50)]), False,
         "weights-sum", "must sum to 100"),
    Case("single-route-weight-99", overlay(routes=[route("3", 99)]), False,
         "weights-sum", "must sum to 100"),
    Case("weight-above-100", put(overlay(), "spec.routes[0].weight", 101), False,
         "weight-range", "greater than the maximum of 100"),
    Case("weight-negative", put(overlay(), "spec.routes[1].weight", -1), False,
         "weight-range", "less than the minimum of 0"),
    Case("weight-as-string", put(overlay(), "spec.routes[0].weight", "80"), False,
         "weight-type", "is not of type 'integer'"),
    Case("weight-as-whole-float", put(overlay(), "spec.routes[0].weight", 80.0), False,
         "weight-type", "must sum to 100 (the rule could not be evaluated"),
    Case("no-routes", overlay(routes=[]), False, "routes-min-items", "should be non-empty"),
    Case("seventeen-routes", overlay(routes=[*SIXTEEN, route("1", 0, model="m17")]), False,
         "routes-max-items", "is too long"),
    Case("duplicate-version", overlay(routes=[route("3", 50), route("3", 50)]), False,
         "routes-unique", "routed twice"),
    Case("duplicate-version-int-and-string", overlay(routes=[route("3", 50), route(3, 50)]),
         False, "routes-unique", "routed twice"),
    Case("duplicate-alias", overlay(routes=[route(alias="champion", weight=50),
                                            route(alias="champion", weight=50)]),
         False, "routes-unique", "routed twice"),
    Case("route-without-version-or-alias", overlay(routes=[route(None, 100)]), False,
         "version-or-alias", "give a version"),
    Case("version-leading-zero", put(overlay(), "spec.routes[0].version", "03"), False,
         "version-form", "does not match"),
    Case("version-trailing-newline", put(overlay(), "spec.routes[0].version", "3\n"), False,
         "version-form", "does not match"),
    Case("version-zero-int", put(overlay(), "spec.routes[0].version", 0), False,
         "version-form", "less than the minimum of 1"),
    Case("version-ten-digits", put(overlay(), "spec.routes[0].version", 1_000_000_000), False,
         "version-form", "greater than the maximum"),
    Case("version-bool", put(overlay(), "spec.routes[0].version", True), False,
         "version-form", "is not valid under any of the given schemas"),
    Case("model-name-form", put(overlay(), "spec.routes[0].model", "-copilot"), False,
         "model-form", "does not match"),
    Case("unknown-route-field", put(overlay(), "spec.routes[0].traffic", 80), False,
         "unknown-field", "'traffic' was unexpected"),
    # -- invalid: shadow ------------------------------------------------------------------
    Case("shadow-is-a-route", overlay(shadow={"model": "copilot", "version": "4"}), False,
         "shadow-not-route", "also a primary route"),
    Case("shadow-is-a-route-int-version", overlay(shadow={"model": "copilot", "version": 3}),
         False, "shadow-not-route", "also a primary route"),
    Case("shadow-alias-is-a-route",
         overlay(routes=[route(alias="champion")], shadow={"model": "copilot",
                                                            "alias": "champion"}),
         False, "shadow-not-route", "also a primary route"),
    Case("shadow-without-version-or-alias", overlay(shadow={"model": "copilot"}), False,
         "version-or-alias", "give a version"),
    Case("shadow-percent-above-100",
         overlay(shadow={"model": "copilot", "version": "9", "percent": 100.5}), False,
         "shadow-percent", "greater than the maximum of 100"),
    Case("shadow-percent-negative",
         overlay(shadow={"model": "copilot", "version": "9", "percent": -1}), False,
         "shadow-percent", "less than the minimum of 0"),
    Case("shadow-percent-bool",
         overlay(shadow={"model": "copilot", "version": "9", "percent": True}), False,
         "shadow-percent", "is not of type 'number'"),
    # -- invalid: modes, match, injection -------------------------------------------------
    Case("shadow-mode-without-match", overlay(mode="shadow"), False, "mode-needs-match",
         "match is required"),
    Case("overlay-mode-without-injection", overlay(mode="overlay"), False,
         "mode-needs-injection", "injection is required"),
    Case("unknown-mode", overlay(mode="canary"), False, "mode-enum", "is not one of"),
    Case("unknown-method", overlay(mode="shadow", match={"method": "FETCH", "path": "/x"}),
         False, "match-method", "does not match"),
    Case("match-path-relative", overlay(mode="shadow", match={"path": "api/score"}), False,
         "match-path", "does not match"),
    Case("match-path-with-space", overlay(mode="shadow", match={"path": "/api score"}), False,
         "match-path", "does not match"),
    Case("match-path-with-nbsp", overlay(mode="shadow", match={"path": "/api\u00a0score"}),
         False, "match-path", "does not match"),
    Case("injection-unknown-kind", overlay(mode="overlay", injection={"kind": "popup"}),
         False, "injection-kind", "is not one of"),
    # -- invalid: sticky, slo, scaling and the rest ---------------------------------------
    Case("sticky-header-and-cookie", overlay(sticky={"header": "x-user-id", "cookie": "s"}),
         False, "sticky-one-of", "exactly one of header or cookie"),
    Case("sticky-empty", overlay(sticky={}), False, "sticky-one-of",
         "exactly one of header or cookie"),
    Case("sticky-reserved-header", overlay(sticky={"header": "X-Overlay-User"}), False,
         "sticky-reserved", "are reserved"),
    Case("sticky-header-not-a-token", overlay(sticky={"header": "x user"}), False,
         "sticky-token", "does not match"),
    Case("p99-above-timeout", overlay(slo={"timeoutMs": 300, "p99Ms": 301}), False,
         "p99-within-timeout", "p99Ms is above timeoutMs"),
    Case("p99-above-default-timeout", overlay(slo={"p99Ms": 801}), False,
         "p99-within-timeout", "p99Ms is above timeoutMs"),
    Case("timeout-zero", overlay(slo={"timeoutMs": 0}), False, "slo-range",
         "less than or equal to the minimum of 0"),
    Case("scaling-min-above-max", overlay(scaling={"minReplicas": 5, "maxReplicas": 2}),
         False, "scaling-ordered", "minReplicas is above maxReplicas"),
    Case("scaling-min-above-default-max", overlay(scaling={"minReplicas": 2}), False,
         "scaling-ordered", "minReplicas is above maxReplicas"),
    Case("scaling-max-zero", overlay(scaling={"maxReplicas": 0}), False, "scaling-range",
         "less than the minimum of 1"),
    Case("budget-zero", overlay(budget={"usdPerDay": 0}), False, "budget-range",
         "less than or equal to the minimum of 0"),
    Case("drift-alpha-one", overlay(drift={"alpha": 1}), False, "drift-range",
         "greater than or equal to the maximum of 1"),
    Case("gpu-fraction-zero", overlay(placement={"gpu": {"memoryGiB": 4, "fraction": 0}}),
         False, "gpu-range", "less than or equal to the minimum of 0"),
    Case("redact-65-fields", overlay(telemetry={"redact": [f"f{i}" for i in range(65)]}),
         False, "redact-max-items", "is too long"),
    Case("unknown-spec-field", overlay(weights={"copilot:3": 100}), False, "unknown-field",
         "'weights' was unexpected"),
    Case("host-missing", put(overlay(), "spec.host", DELETE), False, "host-required",
         "'host' is a required property"),
    Case("host-null", overlay(host=None), False, "host-required",
         "'host' is a required property"),
    # -- invalid: host.url ----------------------------------------------------------------
    Case("url-ftp", overlay(host={"url": "ftp://crm.internal"}), False, "host-url",
         "does not match"),
    Case("url-without-scheme", overlay(host={"url": "crm.internal:8080"}), False, "host-url",
         "does not match"),
    Case("url-without-host", overlay(host={"url": "http://"}), False, "host-url",
         "does not match"),
    Case("url-userinfo-only", overlay(host={"url": "http://user@/x"}), False, "host-url",
         "does not match"),
    Case("url-port-too-big", overlay(host={"url": "http://crm:65536"}), False, "host-url",
         "does not match"),
    Case("url-port-not-a-number", overlay(host={"url": "http://crm:http"}), False,
         "host-url", "does not match"),
    # -- invalid: metadata, apiVersion ----------------------------------------------------
    Case("name-not-a-dns-label", put(overlay(), "metadata.name", "sales.copilot"), False,
         "metadata-name", "does not match"),
    Case("name-upper-case", put(overlay(), "metadata.name", "Sales"), False,
         "metadata-name", "does not match"),
    Case("wrong-api-version", put(overlay(), "apiVersion", "overlays.aioverlay.dev/v1"),
         False, "api-version", "is not one of"),
    # -- pydantic only --------------------------------------------------------------------
    Case("timeout-whole-float", overlay(slo={"timeoutMs": 800.0}), False, "slo-type",
         only="pydantic",
         why="the API server's schema check takes a whole float (JSON 800.0) for an integer, "
         "and no CEL rule reads timeoutMs without p99Ms; the SDK's strict integers refuse "
         "it. kubectl is not affected: YAML 800.0 is sent as 800."),
    Case("ipv6-literal-not-an-address", overlay(host={"url": "http://[::::]/"}), False,
         "host-url", only="pydantic",
         why="the CRD's URL pattern checks an IPv6 literal's characters; Python's ipaddress "
         "(urlsplit) checks that it is an address"),
    Case("more-than-64-labels",
         put(overlay(), "metadata.labels", {f"k{i}": "v" for i in range(65)}), False,
         "metadata-labels", only="pydantic",
         why="a cap of the SDK; the API server limits label syntax, not their number, and a "
         "CRD cannot constrain metadata beyond name"),
    Case("label-key-syntax", put(overlay(), "metadata.labels", {"bad key!": "v"}), False,
         "metadata-labels", only="pydantic",
         why="label syntax is checked by the API server's ObjectMeta validation (the same "
         "rule), which is not part of the CRD"),
    Case("server-set-metadata", put(overlay(), "metadata.uid", "0f6c-uid"), False,
         "metadata-fields", only="pydantic",
         why="spec.Metadata allows name, namespace, labels and annotations only; objects "
         "read from a cluster also carry uid, resourceVersion, generation, "
         "creationTimestamp, managedFields...: callers parsing them must drop those first"),
    # -- CRD only (status, written by the operator) ---------------------------------------
    Case("condition-without-reason",
         {**FULL, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, True,
         "status-condition", "'reason' is a required property", only="crd",
         why="metav1.Condition requires reason, message and lastTransitionTime; the SDK's "
         "Condition model reads them as optional"),
    Case("duplicate-condition-type",
         put({**FULL, "status": STATUS}, "status.conditions[1].type", "Ready"), True,
         "status-condition", "Duplicate value", only="crd",
         why="conditions are a list-type map keyed by type (one entry per type); the SDK's "
         "model does not check uniqueness"),
    Case("condition-reason-form",
         put({**FULL, "status": STATUS}, "status.conditions[0].reason", "routes applied"), True,
         "status-condition", "does not match", only="crd",
         why="metav1.Condition's reason is CamelCase; the SDK's model takes any string"),
    Case("observed-generation-as-string",
         put({**FULL, "status": STATUS}, "status.observedGeneration", "3"), True,
         "status-types", "is not of type 'integer'", only="crd",
         why="the SDK's Status model is lax (pydantic coerces \"3\" to 3); the CRD types it"),
    Case("condition-status-maybe",
         put({**FULL, "status": STATUS}, "status.conditions[0].status", "Maybe"), False,
         "status-condition", "is not one of"),
    Case("applied-at-not-a-time",
         put({**FULL, "status": STATUS}, "status.appliedAt", "yesterday"), True,
         "status-types", "is not a 'date-time'", only="crd",
         why="appliedAt is format date-time in the CRD; the SDK's model reads any string"),
]
