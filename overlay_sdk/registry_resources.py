"""Declared resources of a model version: what one replica needs to serve it.

``register(..., resources={"gpu": "A100-80GB", "fraction": 0.25})`` or
``resources={"cpu": 2, "memory": "4Gi"}`` calls :func:`check_resources`, which returns a
:class:`Resources`; the registry stores its canonical JSON in the version tag
``overlay.resources`` and in the identity configuration, and reads it back as
``ModelVersion.resources``.

Resources are part of the identity (only when declared, so versions without them keep the
identity they had): the same model declared with other resources is a new version, because
a version is what gets deployed, and a declaration that silently kept the old resources of
an identical earlier version would be lost. So a version's resources never change, a
rollback brings back the resources that went with the model, and ``verify`` sees an edited
``overlay.resources`` tag.

Pure: no MLflow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from overlay_sdk.errors import ValidationError

__all__ = ["KEYS", "QUANTITY", "Resources", "check_resources"]

KEYS = ("cpu", "fraction", "gpu", "memory")
QUANTITY = r"^[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
"""A Kubernetes memory quantity such as ``512Mi``, ``4Gi``, ``1.5G`` or ``1000000`` (bytes)."""
_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_GPU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Resources:
    """Resources one replica needs. ``gpu`` is a GPU model (``"A100-80GB"``) or a count;
    ``fraction`` the share of one GPU (0 < f <= 1); ``cpu`` cores (``0.5`` = ``"500m"``);
    ``memory`` a Kubernetes quantity (``"4Gi"``). None: not declared."""

    cpu: float | None = None
    memory: str | None = None
    gpu: str | int | None = None
    fraction: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The declared fields only (what is stored and shown)."""
        return {k: v for k, v in sorted(asdict(self).items()) if v is not None}

    def to_json(self) -> str:
        """Canonical JSON, stored in the ``overlay.resources`` tag."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Resources:
        """A :class:`Resources` from :meth:`to_json`; ValueError if it is not one."""
        doc = json.loads(text)
        if not isinstance(doc, dict) or set(doc) - set(KEYS):
            raise ValueError(f"not a resources declaration: {text[:80]!r}")
        return cls(**doc)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cpu(value: Any) -> float:
    if isinstance(value, str) and (m := _CPU.match(value.strip())):
        value = float(m[1]) / (1000 if m[2] else 1)
    if not _number(value) or not 0 < value <= 1024:
        raise ValidationError.at("resources.cpu", f"must be a number of cores > 0 such as 2 or "
                                 f"0.5, or a Kubernetes quantity such as '500m'; got {value!r:.40}")
    return int(value) if float(value).is_integer() else float(value)


def check_resources(resources: Any) -> Resources | None:
    """The checked declaration (None when ``resources`` is None); ValidationError naming
    ``resources.<key>``."""
    if resources is None:
        return None
    if not isinstance(resources, Mapping) or not resources:
        raise ValidationError.at("resources", "must be a non-empty dict such as {'cpu': 2, "
                                 "'memory': '4Gi'} or {'gpu': 'A100-80GB', 'fraction': 0.25}")
    unknown = sorted(str(k) for k in resources if k not in KEYS)
    if unknown:
        raise ValidationError.at("resources", f"unknown keys {unknown}; use {', '.join(KEYS)}")
    cpu, memory, gpu, fraction = (resources.get(k) for k in ("cpu", "memory", "gpu", "fraction"))
    if cpu is not None:
        cpu = _cpu(cpu)
    if memory is not None and (not isinstance(memory, str) or not re.match(QUANTITY, memory)
                               or not any(c != "0" for c in memory if c.isdigit())):
        raise ValidationError.at("resources.memory", f"{memory!r:.40} is not a Kubernetes "
                                 "quantity; write e.g. '512Mi', '4Gi' or '1.5G'")
    if gpu is not None and not (
            (isinstance(gpu, str) and _GPU.match(gpu))
            or (isinstance(gpu, int) and not isinstance(gpu, bool) and 1 <= gpu <= 64)):
        raise ValidationError.at("resources.gpu", f"{gpu!r:.40} is neither a GPU model such as "
                                 "'A100-80GB' nor a GPU count from 1 to 64")
    if fraction is not None:
        if not _number(fraction) or not 0 < fraction <= 1:
            raise ValidationError.at("resources.fraction", f"must be in (0, 1], the share of one "
                                     f"GPU, e.g. 0.25; got {fraction!r:.40}")
        if gpu is None:
            raise ValidationError.at("resources.fraction", "is a share of a GPU: name the GPU "
                                     "too, e.g. {'gpu': 'A100-80GB', 'fraction': 0.25}")
        if isinstance(gpu, int) and gpu != 1:
            raise ValidationError.at("resources.fraction", f"is a share of one GPU; it cannot go "
                                     f"with a count of {gpu} GPUs")
        fraction = float(fraction)
    return Resources(cpu=cpu, memory=memory, gpu=gpu, fraction=fraction)
