"""The ``AIOverlay`` resource: one schema for the SDK, the CRD and the widgets.

Pydantic v2 models define every field once, with its description and rules. The
same models give SDK validation (:func:`parse_overlay`, :func:`parse_spec`, which
raise :class:`overlay_sdk.errors.ValidationError` naming the field path and the
rule), the CRD's ``openAPIV3Schema`` (:mod:`overlay_sdk.crd`), and the JSON the
widgets send. Field names are camelCase on the wire (``timeoutMs``) and
snake_case in Python (``spec.slo.timeout_ms``).

Pure: no I/O. Model references are only checked for form here; that they exist
in the registry is checked by the client before a revision is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from overlay_sdk.errors import FieldError, ValidationError
from overlay_sdk.validation import convert, rule, validate

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "MAX_ROUTES",
    "AIOverlay",
    "AIOverlaySpec",
    "Budget",
    "Condition",
    "DriftWatch",
    "GpuShare",
    "Host",
    "Injection",
    "Match",
    "Metadata",
    "ModelRef",
    "Placement",
    "Route",
    "Scaling",
    "Shadow",
    "Slo",
    "Status",
    "Sticky",
    "Telemetry",
    "dump_overlay",
    "load_yaml",
    "parse_overlay",
    "parse_spec",
]

API_GROUP = "overlays.aioverlay.dev"
API_VERSION = "v1alpha1"
KIND = "AIOverlay"

MAX_ROUTES = 16
MAX_LABELS = 64

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
VERSION = r"^[1-9][0-9]{0,8}$"
ALIAS = r"^[A-Za-z_][A-Za-z0-9_-]*$"
HTTP_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
METHODS = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_REF = re.compile(r"^(?P<model>[^:@\s]+)(?::(?P<version>[^:@\s]+)|@(?P<alias>[^:@\s]+))$")

StrictWeight = Annotated[int, Field(strict=True, ge=0, le=100)]
Percent = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        validate_default=False,
        serialize_by_alias=True,
    )

    # ``AIOverlay.model_validate(...)`` raises overlay-sdk's ValidationError, like
    # parse_overlay. (``__init__`` is left alone: pydantic calls an overridden __init__ for
    # every nested model, which would turn nested errors into one opaque value error.
    # Build specs from dicts with parse_overlay/parse_spec or model_validate.)
    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as err:
            raise convert(err, cls, _root_of(cls), _PATTERN_HINTS) from None


def _root_of(model: type[BaseModel]) -> str:
    """Error paths of a model validated on its own start where it sits in a document."""
    return "spec" if model.__name__ == "AIOverlaySpec" else ""


def _version_to_str(value: Any) -> Any:
    """YAML writes ``version: 3``; versions are strings on the wire, so accept whole ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


VersionText = Annotated[
    str,
    pydantic.StringConstraints(pattern=VERSION, max_length=9),
    pydantic.BeforeValidator(_version_to_str),
]


@dataclass(frozen=True, order=True)
class ModelRef:
    """A model reference: ``name:version`` (a concrete version) or ``name@alias``."""

    model: str
    version: str | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str, *, field: str = "model") -> ModelRef:
        """Parse ``"copilot:3"`` or ``"copilot@champion"``; ValidationError names ``field``."""
        if not isinstance(text, str):
            raise ValidationError.at(field, f"a model reference must be a string, got {text!r}")
        m = _REF.match(text.strip())
        if not m:
            raise ValidationError.at(
                field,
                f"{text!r} is not a model reference; write name:version (copilot:3) "
                "or name@alias (copilot@champion)",
            )
        model, version, alias = m["model"], m["version"], m["alias"]
        problems = []
        if not re.match(MODEL_NAME, model):
            problems.append(f"model name {model!r} must match {MODEL_NAME}")
        if version is not None and not re.match(VERSION, version):
            problems.append(f"version {version!r} must be a positive integer such as 3")
        if alias is not None and not re.match(ALIAS, alias):
            problems.append(f"alias {alias!r} must match {ALIAS}")
        if problems:
            raise ValidationError([FieldError(field, p) for p in problems])
        return cls(model=model, version=version, alias=alias)

    def __str__(self) -> str:
        return f"{self.model}:{self.version}" if self.version else f"{self.model}@{self.alias}"


class _VersionRef(_Model):
    """Shared fields of a route and the shadow: which model version."""

    model: str = Field(
        min_length=1,
        max_length=128,
        pattern=MODEL_NAME,
        description="Registered model name (the MLflow registered model).",
    )
    version: VersionText | None = Field(
        default=None,
        description=(
            "Registered model version number, as a string. When `alias` is given, the SDK "
            "fills this with the version the alias pointed to when the revision was written."
        ),
    )
    alias: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=ALIAS,
        description=(
            "Model alias (for example `champion`) instead of a fixed version; moving the alias "
            "writes a new revision of every overlay that names it."
        ),
    )

    @model_validator(mode="after")
    def _version_or_alias(self) -> _VersionRef:
        if self.version is None and self.alias is None:
            raise rule("version", "give a version (such as \"3\") or an alias")
        return self

    @property
    def ref(self) -> ModelRef:
        """The reference as written: by alias when an alias is given, else by version."""
        if self.alias is not None:
            return ModelRef(self.model, alias=self.alias)
        return ModelRef(self.model, version=self.version)

    @property
    def key(self) -> tuple[str, str]:
        """Identity used for duplicate checks: the concrete version when known, else the alias."""
        return (self.model, f":{self.version}" if self.version else f"@{self.alias}")

    def __str__(self) -> str:
        if self.alias and self.version:
            return f"{self.model}@{self.alias} (={self.version})"
        return str(self.ref)


class Route(_VersionRef):
    """A primary route: a model version and the share of traffic it serves."""

    weight: StrictWeight = Field(
        description="Share of traffic in percent, an integer 0-100; the weights of all routes sum "
        "to 100."
    )


class Shadow(_VersionRef):
    """A shadow model: gets a copy of the traffic; its output is recorded, never returned."""

    percent: Percent = Field(
        default=100.0,
        description="Share of requests copied to the shadow model, 0-100 (fractions allowed).",
    )


class Host(_Model):
    """The legacy application being augmented."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="Base URL of the host application, http:// or https://, for example "
        "http://crm.internal:8080.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise rule(None, f"{value!r} is not an http(s) URL such as http://crm.internal:8080")
        try:
            _ = parts.port
        except ValueError:
            raise rule(None, f"{value!r} has an invalid port") from None
        return value


class Match(_Model):
    """Which host requests a shadow-mode overlay forks to its model."""

    method: METHODS = Field(default="POST", description="HTTP method to match.")
    path: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^/\S*$",
        description="Request path to match; `*` matches any run of characters, e.g. /api/score/*.",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Sticky(_Model):
    """Where the request key comes from, so one user keeps one version."""

    header: str | None = Field(
        default=None, max_length=128, pattern=HTTP_TOKEN, description="Request header holding the "
        "sticky key, e.g. x-user-id."
    )
    cookie: str | None = Field(
        default=None, max_length=128, pattern=HTTP_TOKEN, description="Cookie holding the sticky "
        "key."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Sticky:
        if (self.header is None) == (self.cookie is None):
            raise rule(None, "give exactly one of header or cookie")
        if self.header is not None and self.header.lower().startswith("x-overlay-"):
            raise rule("header", f"{self.header} is reserved: the gateway strips client "
                       "x-overlay-* headers; name the header your application sends, e.g. "
                       "x-user-id")
        return self


class Injection(_Model):
    """The web component injected into HTML responses in overlay mode."""

    kind: Literal["chat-bubble", "smart-tooltip"] = Field(
        description="Which web component to inject."
    )
    selector: str = Field(
        default="body", min_length=1, max_length=256, description="CSS selector of the element "
        "the component attaches to."
    )
    path: str = Field(
        default="/*", min_length=1, max_length=512, pattern=r"^/\S*$",
        description="Host pages (path glob) that get the component, e.g. /crm/*.",
    )


class Slo(_Model):
    """Latency objectives; the gateway fails open past the timeout."""

    timeout_ms: int = Field(
        default=800, strict=True, gt=0, le=600_000,
        description="Model call timeout in milliseconds; past it the caller gets a degraded "
        "answer and host traffic is untouched.",
    )
    p99_ms: int | None = Field(
        default=None, strict=True, gt=0, le=600_000,
        description="Target 99th-percentile model latency in milliseconds.",
    )

    @model_validator(mode="after")
    def _p99_within_timeout(self) -> Slo:
        if self.p99_ms is not None and self.p99_ms > self.timeout_ms:
            raise rule(
                "p99Ms", f"{self.p99_ms} is above timeoutMs {self.timeout_ms}; "
                "a p99 target must not exceed the timeout"
            )
        return self


class Telemetry(_Model):
    """What the gateway keeps of each model call (timing and status are always kept)."""

    sample_rate: float = Field(
        default=1.0, strict=True, ge=0, le=1, allow_inf_nan=False,
        description="Share of calls (0-1) whose inputs and output are stored.",
    )
    redact: list[Annotated[str, Field(min_length=1, max_length=128,
                                      description="An input field name.")]] = Field(
        default_factory=list, max_length=64,
        description="Input fields stored as *** (case-insensitive names), e.g. [email, ssn].",
    )
    retention_days: int = Field(
        default=30, strict=True, ge=1, le=3650,
        description="Days call records are kept before the gateway deletes them.",
    )


class Budget(_Model):
    """Spending limit; crossing it raises a budget alert."""

    usd_per_day: float = Field(
        strict=True, gt=0, le=10_000_000, allow_inf_nan=False,
        description="Daily spend limit in US dollars."
    )


class DriftWatch(_Model):
    """Drift alerts: each model version's sampled inputs and outputs are tested against its
    registered reference data per window; a feature drifted for ``consecutive`` windows in
    a row raises a drift alert."""

    window: Literal["15min", "30min", "1h", "6h", "1D"] = Field(
        default="1h", description="Window length: 15min, 30min, 1h, 6h or 1D.")
    consecutive: int = Field(
        default=3, strict=True, ge=1, le=100,
        description="Drifted windows in a row that raise an alert.")
    alpha: float = Field(
        default=0.05, strict=True, gt=0, lt=1, allow_inf_nan=False,
        description="Significance level after correction across features (Benjamini-Hochberg).")


class GpuShare(_Model):
    """A share of one GPU."""

    memory_gi_b: float = Field(
        alias="memoryGiB", strict=True, gt=0, le=1024, allow_inf_nan=False,
        description="GPU memory needed, GiB."
    )
    fraction: float = Field(
        default=1.0, strict=True, gt=0, le=1, allow_inf_nan=False,
        description="Fraction of one GPU's compute, in (0, 1].",
    )


class Placement(_Model):
    """Where the models run."""

    tier: Literal["edge", "cloud", "auto"] = Field(
        default="auto", description="edge, cloud, or auto (decided by the scheduler)."
    )
    gpu: GpuShare | None = Field(default=None, description="GPU share, if the models need one.")


class Scaling(_Model):
    """Replica bounds for self-hosted model servers."""

    min_replicas: int = Field(default=0, strict=True, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(default=1, strict=True, ge=1, le=1000, description="Most replicas.")
    predictive: bool = Field(
        default=False, strict=True, description="Scale ahead of forecast traffic."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise rule(
                "minReplicas",
                f"{self.min_replicas} is above maxReplicas {self.max_replicas}",
            )
        return self


class AIOverlaySpec(_Model):
    """Desired state of an overlay: the host, the mode, and how traffic reaches model versions."""

    host: Host = Field(description="The application being augmented.")
    mode: Literal["passthrough", "shadow", "overlay"] = Field(
        default="passthrough",
        description="passthrough: proxy host traffic unchanged, models answer on the invoke "
        "endpoint; shadow: also fork matching host requests to the routed model and record its "
        "output; overlay: also inject the web component into matching HTML pages.",
    )
    routes: list[Route] = Field(
        min_length=1,
        max_length=MAX_ROUTES,
        description="Primary routes: model versions with integer weights summing to 100.",
    )
    shadow: Shadow | None = Field(
        default=None,
        description="A version that gets a copy of the traffic; never one of the routes.",
    )
    match: Match | None = Field(
        default=None, description="Host requests forked to the model in shadow mode."
    )
    sticky: Sticky | None = Field(
        default=None, description="Request key for sticky routing; else each request is random."
    )
    injection: Injection | None = Field(
        default=None, description="Web component injected in overlay mode."
    )
    slo: Slo | None = Field(default=None, description="Latency objectives and model timeout.")
    budget: Budget | None = Field(default=None, description="Spending limit.")
    drift: DriftWatch | None = Field(
        default=None, description="Drift alerts against each version's reference data.")
    telemetry: Telemetry | None = Field(
        default=None, description="Sampling, redaction and retention of call records."
    )
    placement: Placement | None = Field(default=None, description="Where the models run.")
    scaling: Scaling | None = Field(default=None, description="Replica bounds.")

    @field_validator("routes")
    @classmethod
    def _routes_rules(cls, routes: list[Route]) -> list[Route]:
        total = sum(r.weight for r in routes)
        if total != 100:
            raise rule(None, f"weights sum to {total}, must sum to 100")
        seen: dict[tuple[str, str], int] = {}
        for i, route in enumerate(routes):
            if route.key in seen:
                raise rule(
                    f"[{i}]",
                    f"{route} is already routed at routes[{seen[route.key]}]; "
                    "route each version once",
                )
            seen[route.key] = i
        return routes

    @model_validator(mode="after")
    def _cross_field_rules(self) -> AIOverlaySpec:
        if self.shadow is not None:
            for i, route in enumerate(self.routes):
                if route.key == self.shadow.key:
                    raise rule(
                        "shadow",
                        f"{self.shadow} is also a primary route (routes[{i}]); a version is "
                        "either routed or shadowed: remove it from one of them",
                    )
        if self.mode == "shadow" and self.match is None:
            raise rule("match", "required when mode is shadow: say which host requests to fork")
        if self.mode == "overlay" and self.injection is None:
            raise rule("injection", "required when mode is overlay: say what to inject where")
        return self

    def weights(self) -> dict[str, int]:
        """Route weights keyed by ``name:version`` (or ``name@alias`` when unresolved)."""
        return {
            str(ModelRef(r.model, version=r.version) if r.version else r.ref): r.weight
            for r in self.routes
        }


class Metadata(_Model):
    """Object metadata, a subset of Kubernetes ObjectMeta."""

    name: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL,
        description="Overlay name: a DNS-1123 label (lowercase letters, digits, '-').",
    )
    namespace: str | None = Field(
        default=None, max_length=63, pattern=DNS_LABEL, description="Kubernetes namespace."
    )
    labels: dict[str, str] | None = Field(
        default=None, max_length=MAX_LABELS,
        description="Labels: keys of at most 253 characters ([prefix/]name), values of at most "
        "63 characters, as Kubernetes allows.",
    )
    annotations: dict[str, str] | None = Field(
        default=None, max_length=MAX_LABELS,
        description="Annotations (key/value strings), 256 KiB in all at most.",
    )

    @field_validator("labels")
    @classmethod
    def _label_sizes(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (labels or {}).items():
            if not LABEL_KEY.match(key):
                raise rule(f"{key}", "is not a label key: [prefix/]name, the name at most 63 "
                           "characters of letters, digits, '-', '_', '.'")
            if not LABEL_VALUE.match(value):
                raise rule(f"{key}", f"value {value[:40]!r} is not a label value: at most 63 "
                           "characters of letters, digits, '-', '_', '.'")
        return labels

    @field_validator("annotations")
    @classmethod
    def _annotation_size(cls, notes: dict[str, str] | None) -> dict[str, str] | None:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in (notes or {}).items())
        if size > 256 * 1024:
            raise rule(None, f"total {size} bytes, at most 262144 (256 KiB)")
        return notes


class Condition(_Model):
    """A status condition, as in Kubernetes."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, max_length=1024, description="Machine-readable why.")
    message: str | None = Field(default=None, max_length=32768, description="Human-readable why.")
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="Generation the condition was computed for."
    )


class Status(_Model):
    """Observed state, written by the control plane, never by users."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="Last generation the control plane acted on."
    )
    conditions: list[Condition] | None = Field(
        default=None, max_length=16, description="Ready, RoutesApplied, Degraded."
    )
    revision: int | None = Field(default=None, ge=0, description="Revision now applied.")
    applied_at: str | None = Field(
        default=None, description="When that revision was applied (RFC 3339)."
    )
    endpoints: dict[str, str] | None = Field(
        default=None, max_length=16, description="Where the overlay answers (name -> URL)."
    )


class AIOverlay(_Model):
    """An overlay: AI models attached to a host application, and how traffic reaches them."""

    api_version: Literal["overlays.aioverlay.dev/v1alpha1"] = Field(
        default="overlays.aioverlay.dev/v1alpha1",
        description="APIVersion of this object.",
    )
    kind: Literal["AIOverlay"] = Field(default="AIOverlay", description="Kind of this object.")
    metadata: Metadata = Field(description="Name and labels.")
    spec: AIOverlaySpec = Field(description="Desired state.")
    status: Status | None = Field(default=None, description="Observed state.")

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset optional fields left out."""
        return dump_overlay(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Parsing with field-named errors

_PATTERN_HINTS = {
    DNS_LABEL: "is not a DNS-1123 label: use lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    MODEL_NAME: "is not a model name: use letters, digits, '.', '_' and '-', starting with a "
    "letter or digit",
    VERSION: "is not a version: use a positive integer such as \"3\"",
    ALIAS: "is not an alias: use letters, digits, '_' and '-', starting with a letter or '_'",
    HTTP_TOKEN: "is not a valid HTTP header or cookie name",
}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, *, many: bool = False, where: str = "(document)") -> Any:
    """One YAML document (``many``: a list of all of them), refusing duplicate keys.

    Raises ValidationError naming ``where`` when the text is not valid YAML.
    """
    try:
        if many:
            return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ValidationError.at(where, f"not valid YAML: {err}") from None
    except RecursionError:
        raise ValidationError.at(where, "not valid YAML: nested too deeply") from None


def parse_overlay(data: Any) -> AIOverlay:
    """Validate a whole ``AIOverlay`` document (dict, YAML text or model).

    Raises :class:`~overlay_sdk.errors.ValidationError` whose entries name the field path
    (``spec.routes: weights sum to 95, must sum to 100``).
    """
    if isinstance(data, str):
        data = load_yaml(data)
    return validate(AIOverlay, data, "", _PATTERN_HINTS)


def parse_spec(data: Any) -> AIOverlaySpec:
    """Validate the ``spec`` part alone; error paths start with ``spec``."""
    return validate(AIOverlaySpec, data, "spec", _PATTERN_HINTS)


def dump_overlay(overlay: AIOverlay) -> dict[str, Any]:
    """The wire form of an overlay (camelCase, no unset optional fields), JSON-serialisable."""
    doc: dict[str, Any] = overlay.model_dump(mode="json", by_alias=True, exclude_none=True)
    return doc

