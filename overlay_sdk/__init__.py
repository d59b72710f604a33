"""overlay-sdk: add AI to legacy web applications as overlays, from a notebook.

The public facade. Typical use::

    import overlay_sdk as ov
    cp = ov.connect()                                   # embedded control plane
    v1 = cp.models.register("fraud", model=clf, label="v1")
    o = cp.overlays.create("scoring", host="http://127.0.0.1:8001",
                           routes={f"fraud:{v1.version}": 100})
    o.canary("fraud:2", percent=5); o.history()

Names are re-exported one by one from topic modules (see ``__all__``). They load on
first use, so ``import overlay_sdk.spec`` (the gateway, the CRD generator) does not pay
for pandas or MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from overlay_sdk.client import ControlPlane, connect
    from overlay_sdk.errors import (
        BackendError,
        ConflictError,
        FieldError,
        NotFoundError,
        OverlayError,
        ValidationError,
    )
    from overlay_sdk.overlays import Overlay, Overlays
    from overlay_sdk.registry import ModelRegistry, ModelVersion, VerifyResult
    from overlay_sdk.spec import AIOverlay, AIOverlaySpec, ModelRef, Route, Shadow

__version__ = "0.1.0"

_EXPORTS = {
    "AIOverlay": "overlay_sdk.spec",
    "AIOverlaySpec": "overlay_sdk.spec",
    "BackendError": "overlay_sdk.errors",
    "ConflictError": "overlay_sdk.errors",
    "ControlPlane": "overlay_sdk.client",
    "FieldError": "overlay_sdk.errors",
    "ModelRef": "overlay_sdk.spec",
    "ModelRegistry": "overlay_sdk.registry",
    "ModelVersion": "overlay_sdk.registry",
    "NotFoundError": "overlay_sdk.errors",
    "Overlay": "overlay_sdk.overlays",
    "OverlayError": "overlay_sdk.errors",
    "Overlays": "overlay_sdk.overlays",
    "Route": "overlay_sdk.spec",
    "Shadow": "overlay_sdk.spec",
    "ValidationError": "overlay_sdk.errors",
    "VerifyResult": "overlay_sdk.registry",
    "connect": "overlay_sdk.client",
}

__all__ = [
    "AIOverlay",
    "AIOverlaySpec",
    "BackendError",
    "ConflictError",
    "ControlPlane",
    "FieldError",
    "ModelRef",
    "ModelRegistry",
    "ModelVersion",
    "NotFoundError",
    "Overlay",
    "OverlayError",
    "Overlays",
    "Route",
    "Shadow",
    "ValidationError",
    "VerifyResult",
    "__version__",
    "connect",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'overlay_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is (``jupyter labextension develop .``)."""
    return [{"src": "labextension", "dest": "@overlay-sdk/jupyterlab-ext"}]
