"""Which control plane the server extension serves: the ``OverlaySdk`` configurable and the
control planes it opens.

``c.OverlaySdk.home`` (a folder, or ``k8s://CONTEXT/NAMESPACE``) and
``c.OverlaySdk.registry_uri`` (an MLflow tracking URI) come from the Jupyter server's
configuration (``jupyter_server_config.py``/``.json``, or ``--OverlaySdk.home=...``); empty
means what ``overlay_sdk.connect()`` finds from the server's working directory and
``$OVERLAY_HOME``. A request's ``?plane=ADDRESS`` picks another control plane (with the same
registry): a cluster address, or an existing overlay home (never created by a request).
:class:`Planes` opens each control plane on first use and keeps the last 8 used: calls are
blocking, the handlers make them in worker threads.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.errors import FieldError, ValidationError
from overlay_sdk.jupyter.payloads import CONFIG_FIELD_PREFIX
from overlay_sdk.store.local import DB_FILENAME

__all__ = ["MAX_PLANES", "PLANE_FORMS", "STORE_FILE", "Opener", "OverlaySdk", "Planes"]

Opener = Callable[..., ControlPlane]
"""How a control plane is opened: ``opener(home, registry_uri=...)`` (``connect``)."""
MAX_PLANES = 8
"""How many control planes stay open at most (the least recently used one is closed)."""
STORE_FILE = DB_FILENAME
"""What makes a folder an overlay home: its store of overlays (``overlays.db``)."""
PLANE_FORMS = ("give k8s://CONTEXT/NAMESPACE for a cluster, or the absolute path of an "
               f"existing overlay home (a folder holding {STORE_FILE}); leave it empty for the "
               "server's own")


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
    """Control planes by address, opened on first use, closed together (:meth:`close`).
    Thread-safe: call it from worker threads.

    At most ``limit`` (default :data:`MAX_PLANES`) stay open: opening another closes the
    least recently used one, once no :meth:`lease` of it is running any more.

    An address from a request (``?plane=``) must be ``k8s://...`` or the absolute path of
    an existing overlay home (a folder holding ``overlays.db``): a request never creates a
    folder. The configured ``OverlaySdk.home`` may be created, as ``overlay_sdk.connect()``
    does."""

    def __init__(self, settings: OverlaySdk, *, opener: Opener = connect,
                 limit: int = MAX_PLANES) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.settings = settings
        self.limit = limit
        self._opener = opener
        self._planes: OrderedDict[str, ControlPlane] = OrderedDict()
        self._leases: dict[int, int] = {}  # id(plane) -> running leases
        self._retired: dict[int, ControlPlane] = {}  # evicted while leased: close when done
        self._lock = threading.Lock()
        self.closed = False

    def key(self, plane: str | None) -> str:
        """The cache key of ``plane`` (None: the configured one; "" when that is the
        default): folder paths made absolute, cluster addresses as given. Does not check
        ``plane`` (:meth:`get` does)."""
        address = plane if plane is not None else self.settings.home
        if not address or "://" in address:
            return str(address or "")
        return os.path.abspath(os.path.expanduser(address))

    def _request_key(self, plane: str) -> str:
        """The key of an address a request gave; ValidationError at ``plane`` unless it is
        a cluster address or an existing overlay home (or the configured home)."""
        text = plane.strip()
        if text.lower().startswith("k8s://"):
            return text
        if "://" in text or not os.path.isabs(text):
            raise ValidationError.at("plane", f"{text!r:.200} is not a control plane address: "
                                     f"{PLANE_FORMS}")
        key = os.path.abspath(text)
        configured = self.key(None)
        if key == configured or key in self._planes:
            return key  # the configured home (which may still have to be created), or open
        found = getattr(self._planes.get(configured), "home", None)
        if found and key == os.path.abspath(found):
            return configured  # the folder the configured plane found (status says it)
        if not os.path.isdir(key):
            raise ValidationError.at("plane", f"there is no folder {key!r:.200}: {PLANE_FORMS}")
        if not os.path.isfile(os.path.join(key, STORE_FILE)):
            raise ValidationError.at("plane", f"{key!r:.200} holds no {STORE_FILE}, so it is "
                                     f"not an overlay home: {PLANE_FORMS}")
        return key

    def get(self, plane: str | None = None) -> ControlPlane:
        """The control plane at ``plane`` (None: the configured one), opened if needed.

        Blocking. A bad address raises ValidationError naming ``plane`` (from a request)
        or ``OverlaySdk.home`` / ``OverlaySdk.registry_uri`` (from the configuration).
        Without a :meth:`lease`, the plane may be closed once ``limit`` others were opened
        after it."""
        with self._lock:
            return self._get(plane)

    @contextmanager
    def lease(self, plane: str | None = None) -> Iterator[ControlPlane]:
        """:meth:`get`, and the plane is not closed (evicted) before the block ends."""
        with self._lock:
            cp = self._get(plane)
            self._leases[id(cp)] = self._leases.get(id(cp), 0) + 1
        try:
            yield cp
        finally:
            done = None
            with self._lock:
                left = self._leases.pop(id(cp)) - 1
                if left:
                    self._leases[id(cp)] = left
                else:
                    done = self._retired.pop(id(cp), None)
            if done is not None:
                done.close()

    def _get(self, plane: str | None) -> ControlPlane:
        """(Under the lock.)"""
        if self.closed:
            raise RuntimeError("the server extension is shutting down")
        key = self.key(None) if plane is None else self._request_key(plane)
        cp = self._planes.get(key)
        if cp is not None and not cp.closed:
            self._planes.move_to_end(key)
            return cp
        cp = self._open(key, from_request=plane is not None)
        self._planes[key] = cp
        self._planes.move_to_end(key)
        while len(self._planes) > self.limit:
            _, evicted = self._planes.popitem(last=False)
            if self._leases.get(id(evicted)):
                self._retired[id(evicted)] = evicted
            else:
                evicted.close()
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
            planes, self._planes = list(self._planes.values()), OrderedDict()
            planes += self._retired.values()
            self._retired = {}
        for cp in planes:
            cp.close()
