"""Turn pydantic validation errors into overlay-sdk's ValidationError, paths first.

Generic over any pydantic model: :func:`validate` returns the model or raises
:class:`~overlay_sdk.errors.ValidationError` whose entries name the field path by
its wire (camelCase) name and say the rule, e.g. ``spec.routes: weights sum to 95,
must sum to 100``. Models raise :func:`rule` from their validators to name a
sub-field and give a sentence of their own. Used by :mod:`overlay_sdk.spec`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from overlay_sdk.errors import FieldError, ValidationError

__all__ = ["convert", "rule", "validate"]


def rule(field: str | None, message: str) -> PydanticCustomError:
    """A rule violation; ``field`` (wire name, may be dotted) is appended to the error path."""
    return PydanticCustomError("overlay_rule", message, {"field": field or ""})


M = TypeVar("M", bound=BaseModel)


def _walk_fields(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> list[str] | None:
    """Allowed wire field names of the model found at ``loc`` below ``model`` (None if unknown)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        nxt = None
        for fname, finfo in current.model_fields.items():
            if part in (finfo.alias, fname):
                nxt = finfo.annotation
                break
        if nxt is None:
            return None
        current = _unwrap(nxt)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return None


def _unwrap(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``, else the annotation itself."""
    args = getattr(annotation, "__args__", None)
    if args:
        for arg in args:
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation




def _format_path(root: str, loc: tuple[str | int, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.startswith("["):
            path += part
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "(document)"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def convert(
    err: pydantic.ValidationError, model: type[BaseModel], root: str, hints: Mapping[str, str]
) -> ValidationError:
    """Turn pydantic's errors into ours: one FieldError per problem, path first."""
    found: list[FieldError] = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not _is_union_tag(p))
        kind = e["type"]
        ctx = e.get("ctx") or {}
        if kind == "overlay_rule":
            extra = str(ctx.get("field", ""))
            if extra:
                loc = loc + tuple(extra.split("."))
            message = e["msg"]
        elif kind == "extra_forbidden":
            allowed = _walk_fields(model, loc[:-1])
            hint = f"; allowed fields: {', '.join(allowed)}" if allowed else ""
            message = f"unknown field{hint}"
        elif kind == "too_short":
            message = (
                f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
            )
        elif kind == "too_long":
            actual = ctx.get("actual_length")
            if actual is None and hasattr(e.get("input"), "__len__"):
                actual = len(e["input"])
            message = f"has {actual} items, at most {ctx.get('max_length')} allowed"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "string_pattern_mismatch" and ctx.get("pattern") in hints:
            message = f"{_short(e.get('input'))} {hints[ctx['pattern']]}"
        elif kind == "value_error":
            message = str(ctx.get("error", e["msg"]))
        else:
            message = f"{e['msg']} (got {_short(e.get('input'))})"
        fe = FieldError(_format_path(root, loc), message)
        if fe not in found:
            found.append(fe)
    return ValidationError(found)


def _is_union_tag(part: str | int) -> bool:
    # pydantic adds the union member's type name to loc for ``X | None`` on some inputs.
    return isinstance(part, str) and part in {"str", "int", "float", "bool", "none"}


def validate(
    model: type[M], data: Any, root: str = "", hints: Mapping[str, str] | None = None
) -> M:
    """Validate ``data`` as ``model``; pydantic's errors become one :class:`ValidationError`.

    Each entry names the field path below ``root`` (``spec.routes[1].weight``, by wire
    names) and the rule; ``hints`` maps a regex pattern to a sentence explaining it.
    """
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:
        # the core validator: models may override model_validate to convert errors themselves
        instance: M = model.__pydantic_validator__.validate_python(data)
        return instance
    except pydantic.ValidationError as err:
        raise convert(err, model, root, hints or {}) from None
    except ValidationError:
        raise
    except (TypeError, ValueError, RecursionError, OverflowError) as err:
        raise ValidationError.at(root or "(document)", f"cannot read input: {err}") from None
