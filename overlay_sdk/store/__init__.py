"""Where overlay specs and their revisions live: the ``Store`` protocol and its backends.

The control-plane client writes through a store; the gateway's reconciler watches one.
:class:`LocalStore` is the embedded default (SQLite in the overlay home);
:class:`KubernetesStore` keeps overlays as AIOverlay custom resources of one namespace
(it needs the ``k8s`` extra, so it is imported on first use). See
:mod:`overlay_sdk.store.base` for the rules every store keeps.
"""

from __future__ import annotations

import typing as _typing

from overlay_sdk.store.base import Action, Revision, Store, WatchEvent, created_revision
from overlay_sdk.store.local import LocalStore

if _typing.TYPE_CHECKING:
    from overlay_sdk.store.kubernetes import KubernetesStore

__all__ = [
    "Action",
    "KubernetesStore",
    "LocalStore",
    "Revision",
    "Store",
    "WatchEvent",
    "created_revision",
]


def __getattr__(name: str) -> _typing.Any:
    if name == "KubernetesStore":  # the official kubernetes client, only when asked for
        from overlay_sdk.store.kubernetes import KubernetesStore

        return KubernetesStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
