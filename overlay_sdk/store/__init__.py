"""Where overlay specs and their revisions live: the ``Store`` protocol and its backends.

The control-plane client writes through a store; the gateway's reconciler watches one.
:class:`LocalStore` is the embedded default (SQLite in the overlay home). See
:mod:`overlay_sdk.store.base` for the rules every store keeps.
"""

from __future__ import annotations

from overlay_sdk.store.base import Action, Revision, Store, WatchEvent, created_revision
from overlay_sdk.store.local import LocalStore

__all__ = ["Action", "LocalStore", "Revision", "Store", "WatchEvent", "created_revision"]
