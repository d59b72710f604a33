"""Check a document against the AIOverlay CRD offline, as the API server would.

No kube-apiserver runs in our tests, so this module plays its validating part for
our own CRD (:mod:`overlay_sdk.crd`): null pruning, the ``openAPIV3Schema`` (with the
API server's meaning of ``pattern``, ``integer`` and ``format``), unknown fields as
with ``fieldValidation=Strict`` (what the Kubernetes store sends), ``x-kubernetes-list-type``
uniqueness, and every CEL ``x-kubernetes-validations`` rule evaluated with ``cel-python``
at its location (``self`` bound to the value there, converted by the schema as
Kubernetes does). Kubernetes' CEL libraries are not part of cel-python: only the
extension functions the CRD uses are shimmed here (:data:`EXTENSIONS`), with the
Kubernetes semantics; a rule calling anything else fails to evaluate.

cel-python is not cel-go: it has no heterogeneous equality (``"3" == 3`` is an error
here, false in Kubernetes), so rules compare values of one type (``string(version)``),
and tests treat an evaluation error as a failure unless a case expects one.

Not modelled: ObjectMeta validation (labels, annotations, name uniqueness), defaulting
(the CRD sets no defaults), transition rules (``oldSelf``), CEL cost limits (the
schema's bounds are checked by tests instead), ratcheting.

Needs the test extras (``cel-python``, which brings ``google-re2``, and ``jsonschema``);
nothing in the runtime SDK imports it. Used by the CRD tests; tests on kmock (which
validates nothing) can call :func:`crd_errors` to refuse what an API server would.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]
import re2  # type: ignore[import-untyped]
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from overlay_sdk.crd import structural_schema

__all__ = [
    "EXTENSIONS",
    "NOT_CHECKED",
    "CrdError",
    "RuleSite",
    "cel_errors",
    "crd_errors",
    "evaluate",
    "prune_nulls",
    "rule_sites",
    "schema_errors",
    "validator",
]

Schema = Mapping[str, Any]

# The fields of metav1.ObjectMeta (Strict field validation knows them; the CRD schema does not).
OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})

MAX_JSON_INTEGER = 2**53 - 1  # kube-openapi treats a whole float up to this as an integer


@functools.lru_cache(maxsize=1)
def _crd_schema() -> Schema:
    """The CRD's openAPIV3Schema, generated once (read only)."""
    return structural_schema()


# Schema keywords whose failure is a TypeInvalid, Required, NotSupported, TooLong or TooMany
# error in the API server. (An int-or-string field of the wrong type fails its anyOf.)
_BLOCKING = frozenset({"type", "anyOf", "required", "enum", "maxLength", "maxItems",
                       "maxProperties"})
NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


@dataclass(frozen=True)
class CrdError:
    """One refusal: ``path`` such as ``spec.routes[1]``; ``rule`` is the CEL text, if any."""

    path: str
    message: str
    rule: str | None = None
    keyword: str = ""  # the schema keyword that failed (``type``, ``enum``...), if any

    @property
    def blocking(self) -> bool:
        """A type, required, enum or size violation: the API server then skips the CEL
        rules (apiextensions-apiserver ``hasBlockingErr``)."""
        return self.keyword in _BLOCKING

    def __str__(self) -> str:
        return f"{self.path or '(document)'}: {self.message}"


@dataclass(frozen=True)
class RuleSite:
    """A CEL rule and the schema location it runs at (``.spec.routes[]`` style)."""

    path: str
    rule: Mapping[str, str]
    schema: Schema


# ---------------------------------------------------------------------------------------
# Kubernetes CEL extension shims


class _Invalid:
    """A value the API server could not convert for CEL (say a float in an integer field).

    Kubernetes keeps such a field present (``has()`` is true) and fails the expression
    that reads it; cel-python fails any operator on an unknown Python object the same way.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<invalid data: {self.reason}>"


def _sum(values: Any) -> Any:
    """Kubernetes list library ``<list>.sum()``: ints to an int (0 when empty), doubles to a
    double; overflow, mixed or other element types are errors."""
    if not isinstance(values, celtypes.ListType):
        return CELEvalError("no such overload: sum() needs a list")
    items: list[Any] = list(values)
    kinds = {type(v) for v in items}
    if not items:
        return celtypes.IntType(0)
    if kinds == {celtypes.IntType}:
        total = sum(int(v) for v in items)
        if not -(2**63) <= total < 2**63:
            return CELEvalError("integer overflow in sum()")
        return celtypes.IntType(total)
    if kinds == {celtypes.DoubleType}:
        return celtypes.DoubleType(math.fsum(float(v) for v in items))
    return CELEvalError(f"no such overload: sum() of {sorted(k.__name__ for k in kinds)}")


EXTENSIONS: dict[str, Callable[..., Any]] = {"sum": _sum}


@functools.lru_cache(maxsize=256)
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=EXTENSIONS)


# ---------------------------------------------------------------------------------------
# Conversion of JSON values to CEL values, by schema (k8s.io/apiserver/pkg/cel/common)


def _to_cel(value: Any, schema: Schema) -> Any:
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, str):
            return celtypes.StringType(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return celtypes.IntType(value)
        return _Invalid("expected an int or a string")
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return _Invalid("expected a map")
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        out: dict[Any, Any] = {}
        for key, item in value.items():
            sub = props.get(key) if props is not None else extra
            if isinstance(sub, Mapping):  # unknown fields were pruned by the API server
                out[celtypes.StringType(key)] = _to_cel(item, sub)
        return celtypes.MapType(out)
    if kind == "array":
        if not isinstance(value, list):
            return _Invalid("expected a list")
        return celtypes.ListType([_to_cel(v, schema.get("items", {})) for v in value])
    if kind == "string":
        return celtypes.StringType(value) if isinstance(value, str) else _Invalid("not a string")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return celtypes.IntType(value)
        return _Invalid(f"expected int, got {type(value).__name__}")
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return celtypes.DoubleType(float(value))
        return _Invalid("expected a number")
    if kind == "boolean":
        return celtypes.BoolType(value) if isinstance(value, bool) else _Invalid("not a bool")
    return json_to_cel(value)


# ---------------------------------------------------------------------------------------
# The schema part


def prune_nulls(value: Any, schema: Schema) -> Any:
    """Drop ``null`` fields (the API server prunes nulls of non-nullable fields)."""
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {
            k: prune_nulls(v, props.get(k, {}))
            for k, v in value.items()
            if not (v is None and k in props and not props[k].get("nullable"))
        }
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), Mapping):
        return {k: prune_nulls(v, schema["additionalProperties"]) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [prune_nulls(v, schema["items"]) for v in value]
    return value


def _k8s_integer(_checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    return (
        isinstance(instance, float) and math.isfinite(instance)
        and instance.is_integer() and abs(instance) <= MAX_JSON_INTEGER
    )


def _re2_pattern(
    _validator: Any, pattern: str, instance: Any, _schema: Any
) -> Iterator[jsonschema.ValidationError]:
    # The API server matches `pattern` with Go's regexp (RE2), unanchored.
    if isinstance(instance, str) and re2.search(pattern, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,  # OpenAPI 3.0 bounds (boolean exclusiveMinimum) are draft 4
    validators={"pattern": _re2_pattern},
    type_checker=jsonschema.Draft4Validator.TYPE_CHECKER.redefine("integer", _k8s_integer),
)


def _strict(schema: Schema, path: str = "") -> dict[str, Any]:
    """A copy refusing unknown fields, as ``fieldValidation=Strict`` does."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {
            k: _strict(v, f"{path}.{k}") for k, v in out["properties"].items()
        }
        if path == ".metadata":
            out["properties"].update(
                {k: {} for k in OBJECT_META_FIELDS if k not in out["properties"]}
            )
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(out.get("items"), Mapping):
        out["items"] = _strict(out["items"], f"{path}[]")
    if isinstance(out.get("additionalProperties"), Mapping):
        out["additionalProperties"] = _strict(out["additionalProperties"], f"{path}{{}}")
    return out


def validator(schema: Schema | None = None, *, strict: bool = True) -> Any:
    """A jsonschema validator for ``schema`` (default: the generated CRD's) that reads it as
    the API server does: RE2 patterns, whole floats as integers, ``date-time`` checked,
    and (``strict``) unknown fields refused."""
    if schema is None:
        return _default_validator(strict)
    return _Validator(
        _strict(schema) if strict else dict(schema),
        format_checker=jsonschema.FormatChecker(formats=["date-time"]),
    )


@functools.lru_cache(maxsize=2)
def _default_validator(strict: bool) -> Any:
    return validator(_crd_schema(), strict=strict)


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_errors(
    doc: Any, schema: Schema | None = None, *, strict: bool = True
) -> list[CrdError]:
    """What an ``openAPIV3Schema`` (default: the generated CRD's) refuses in ``doc``, nulls
    pruned first; ``strict``: unknown fields are errors too, else they would be pruned."""
    check = validator(schema, strict=strict)
    schema = _crd_schema() if schema is None else schema
    doc = prune_nulls(doc, schema)
    errors = [
        CrdError(_json_path(e.absolute_path), e.message, keyword=str(e.validator))
        for e in check.iter_errors(doc)
    ]
    errors += _list_type_errors(doc, schema, "")
    return errors


def _list_type_errors(value: Any, schema: Schema, path: str) -> list[CrdError]:
    errors: list[CrdError] = []
    for where, item, sub in _nodes(value, schema, path):
        list_type = sub.get("x-kubernetes-list-type")
        if list_type not in ("map", "set") or not isinstance(item, list):
            continue
        keys = sub.get("x-kubernetes-list-map-keys", [])
        seen: set[str] = set()
        for i, element in enumerate(item):
            if list_type == "map" and isinstance(element, dict):
                key = repr([element.get(k) for k in keys])
            else:
                key = repr(element)
            if key in seen:
                errors.append(CrdError(f"{where}[{i}]", f"Duplicate value: {key}"))
            seen.add(key)
    return errors


# ---------------------------------------------------------------------------------------
# The CEL part


def _nodes(value: Any, schema: Schema, path: str) -> Iterator[tuple[str, Any, Schema]]:
    """Every (data path, value, schema) where the document has a value."""
    yield path, value, schema
    if isinstance(value, dict):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) if props is not None else extra
            if isinstance(sub, Mapping):
                yield from _nodes(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _nodes(item, schema["items"], f"{path}[{i}]")


def rule_sites(schema: Schema | None = None, path: str = "") -> list[RuleSite]:
    """Every ``x-kubernetes-validations`` rule in the schema, with its location."""
    schema = _crd_schema() if schema is None else schema
    sites = [RuleSite(path, rule, schema) for rule in schema.get("x-kubernetes-validations", [])]
    for name, sub in (schema.get("properties") or {}).items():
        sites += rule_sites(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        sites += rule_sites(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        sites += rule_sites(schema["additionalProperties"], f"{path}{{}}")
    return sites


def evaluate(rule: str, value: Any, schema: Schema) -> bool | str:
    """``rule`` with ``self`` bound to ``value`` (typed by ``schema``): True, False, or the
    evaluation error as text (the API server refuses the object then too)."""
    try:
        result = _program(rule).evaluate({"self": _to_cel(value, schema)})
    except (CELEvalError, TypeError, ValueError, KeyError) as err:
        return f"{type(err).__name__}: {err}"
    if isinstance(result, CELEvalError):
        return f"CELEvalError: {result}"
    if not isinstance(result, celtypes.BoolType):
        return f"rule returned {result!r}, not a bool"
    return bool(result)


def cel_errors(doc: Any, schema: Schema | None = None) -> list[CrdError]:
    """What the CEL rules of ``schema`` (default: the generated CRD's) refuse in ``doc``,
    each rule run wherever its field is set."""
    schema = _crd_schema() if schema is None else schema
    doc = prune_nulls(doc, schema)
    errors: list[CrdError] = []
    for path, value, sub in _nodes(doc, schema, ""):
        for rule in sub.get("x-kubernetes-validations", []):
            verdict = evaluate(rule["rule"], value, sub)
            if verdict is True:
                continue
            where = path + rule.get("fieldPath", "")
            message = rule["message"]
            if verdict is not False:
                message = f"{message} (the rule could not be evaluated: {verdict})"
            errors.append(CrdError(where, message, rule["rule"]))
    return errors


def crd_errors(
    doc: Any, schema: Schema | None = None, *, strict: bool = True
) -> list[CrdError]:
    """Everything the CRD (schema, list types and CEL rules; default: the generated CRD's
    ``openAPIV3Schema``) refuses in ``doc``; empty when the API server would accept it
    (ObjectMeta validation aside). As in the API server, the CEL rules are not run when
    the schema check found a blocking error (:attr:`CrdError.blocking`)."""
    doc = copy.deepcopy(doc)
    errors = schema_errors(doc, schema, strict=strict)
    if any(e.blocking for e in errors):
        return [*errors, CrdError("", NOT_CHECKED)]
    return errors + cel_errors(doc, schema)
