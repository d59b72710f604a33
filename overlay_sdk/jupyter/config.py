"""Which control plane the server extension serves: the ``OverlaySdk`` configurable and the
control planes it opens.

``c.OverlaySdk.home`` (a folder, or ``k8s://CONTEXT/NAMESPACE``) and
``c.OverlaySdk.registry_uri`` (an MLflow tracking URI) come from the Jupyter server's
configuration (``jupyter_server_config.py``/``.json``, or ``--OverlaySdk.home=...``); empty
means what ``overlay_sdk.connect()`` finds from the server's working directory and
``$OVERLAY_HOME``. A request's ``?plane=ADDRESS`` picks another control plane (with the same
registry). :class:`Planes` opens each control plane on first use and keeps it: calls are
blocking, the handlers make them in worker threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.errors import FieldError, ValidationError
from overlay_sdk.jupyter.payloads import CONFIG_FIELD_PREFIX

__all__ = ["Opener", "OverlaySdk", "Planes"]

Opener = Callable[..., ControlPlane]
"""How a control plane is opened: ``opener(home, registry_uri=...)`` (``connect``)."""


class OverlaySdk(Configurable):
    """The overlay-sdk server extension's settings (``c.OverlaySdk.*``)."""

    home = Unicode(
        "",
        help="The control plane the extension serves: an overlay home folder, or "
        "k8s://CONTEXT/NAMESPACE for a cluster. Empty: what overlay_sdk.connect() finds "
        "($OVERLAY_HOME, else the nearest .overlay/ at or above the server's directory).",
    ).tag(config=True)

    registry_uri = Unicode(
        "",
        help="The MLflow tracking URI of the model registry (required for a cluster). Empty: "
        "the registry inside the overlay home (sqlite:///<home>/mlflow.db). Applies to every "
        "control plane a request picks with ?plane=.",
    ).tag(config=True)


class Planes:
    """Control planes by address, opened on first use (:meth:`get`), closed together
    (:meth:`close`). Thread-safe: call it from worker threads."""

    def __init__(self, settings: OverlaySdk, *, opener: Opener = connect) -> None:
        self.settings = settings
        self._opener = opener
        self._planes: dict[str, ControlPlane] = {}
        self._lock = threading.Lock()
        self.closed = False

    def key(self, plane: str | None) -> str:
        """The cache key of ``plane`` (None: the configured one; "" when that is the
        default): folder paths made absolute, cluster addresses as given."""
        address = plane if plane is not None else self.settings.home
        if not address or "://" in address:
            return str(address or "")
        return os.path.abspath(os.path.expanduser(address))

    def get(self, plane: str | None = None) -> ControlPlane:
        """The control plane at ``plane`` (None: the configured one), opened if needed.

        Blocking. A bad address raises ValidationError naming ``plane`` (from a request)
        or ``OverlaySdk.home`` / ``OverlaySdk.registry_uri`` (from the configuration)."""
        key = self.key(plane)
        with self._lock:
            if self.closed:
                raise RuntimeError("the server extension is shutting down")
            cp = self._planes.get(key)
            if cp is None or cp.closed:
                cp = self._open(key, from_request=plane is not None)
                self._planes[key] = cp
            return cp

    def _open(self, key: str, *, from_request: bool) -> ControlPlane:
        registry = self.settings.registry_uri or None
        try:
            return self._opener(key or None, registry_uri=registry)
        except ValidationError as err:
            names = {"home": "plane" if from_request else f"{CONFIG_FIELD_PREFIX}home",
                     "registry_uri": f"{CONFIG_FIELD_PREFIX}registry_uri"}
            raise ValidationError(
                [FieldError(names.get(e.path, e.path), e.message) for e in err.errors]
            ) from None

    def addresses(self) -> list[str]:
        """The keys of the control planes open now."""
        with self._lock:
            return sorted(self._planes)

    def close(self, *_: Any) -> None:
        """Close every control plane opened; later :meth:`get` calls fail."""
        with self._lock:
            self.closed = True
            planes, self._planes = list(self._planes.values()), {}
        for cp in planes:
            cp.close()
