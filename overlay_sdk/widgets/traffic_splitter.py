"""``TrafficSplitter(overlay)``: split an overlay's traffic between versions by dragging.

One slider per route version (integer weights always summing to 100: moving one
rebalances the unlocked others proportionally), a lock per slider, canary presets
(1/5/25/50 %), a shadow version with its percent, Apply (or live apply, debounced). The
change goes through the SDK as any other (``o.set_traffic(...)``: one new revision); an
invalid one shows its error inline and changes nothing. Below, the applied revision and
how long the gateway took to apply it (``o.status()``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anywidget
import traitlets

from overlay_sdk.errors import ConflictError, OverlayError, ValidationError
from overlay_sdk.overlays import KEEP, Overlay
from overlay_sdk.widgets.assets import asset, esm
from overlay_sdk.widgets.inputs import error_of
from overlay_sdk.widgets.traffic_state import (
    parse_apply,
    shadow_choices,
    splitter_state,
    status_text,
)

__all__ = ["TrafficSplitter"]

STATUS_WAIT_S = 15.0  # how long the applied revision is watched for the gateway to apply it
STATUS_POLL_S = 0.1


class TrafficSplitter(anywidget.AnyWidget):
    """Sliders for overlay ``overlay``'s route weights and shadow (module docstring).

    ``live=True`` applies each change when the user lets go of a slider (debounced by
    ``debounce_ms``). In code: ``splitter.apply({"fraud:1": 90, "fraud:2": 10})`` does
    what the Apply button does; ``splitter.error`` holds the last refusal."""

    _esm = esm("traffic_splitter.js")
    _css = asset("traffic_splitter.css")

    overlay = traitlets.Unicode().tag(sync=True)
    revision = traitlets.Int(0).tag(sync=True)
    routes = traitlets.List(traitlets.Dict()).tag(sync=True)
    shadow = traitlets.Unicode("").tag(sync=True)
    shadow_percent = traitlets.Float(100.0).tag(sync=True)
    shadow_choices = traitlets.List(traitlets.Unicode()).tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)
    debounce_ms = traitlets.Int(600).tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    error = traitlets.Dict().tag(sync=True)
    status_text = traitlets.Unicode("").tag(sync=True)
    applied_revision = traitlets.Int(None, allow_none=True).tag(sync=True)
    propagation_ms = traitlets.Float(None, allow_none=True).tag(sync=True)

    def __init__(self, overlay: Overlay, *, live: bool = False, debounce_ms: int = 600,
                 **kwargs: Any) -> None:
        if not isinstance(overlay, Overlay):
            raise ValidationError.at("overlay", f"give an overlay handle (cp.overlays.get("
                                     f"'name')), got {type(overlay).__name__}")
        super().__init__(overlay=overlay.name, live=live, debounce_ms=debounce_ms, **kwargs)
        self._overlay = overlay
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._status_lock = threading.Lock()
        self.on_msg(self._on_message)
        self.refresh()

    @property
    def handle(self) -> Overlay:
        """The overlay handle the widget changes."""
        return self._overlay

    @property
    def weights(self) -> dict[str, int]:
        """The applied weights, by version."""
        return {r["key"]: r["weight"] for r in self.routes}

    def refresh(self) -> TrafficSplitter:
        """Re-read the overlay (someone else may have changed it) and the gateway's status."""
        self._overlay.refresh()
        self._show()
        self._read_status()
        return self

    def _show(self) -> None:
        spec = self._overlay.spec
        state = splitter_state(spec)
        models = dict.fromkeys(r.model for r in spec.routes)
        if spec.shadow is not None:
            models[spec.shadow.model] = None
        registry = self._overlay.cp.models
        versions = {m: list(registry.versions(m)["version"]) for m in models}
        with self.hold_sync():
            self.revision = self._overlay.revision
            self.routes = state["routes"]
            self.shadow = state["shadow"]
            self.shadow_percent = state["shadow_percent"]
            self.shadow_choices = shadow_choices(spec, versions)

    def apply(self, weights: dict[str, int] | None = None, *, shadow: Any = KEEP,
              shadow_percent: float | None = None) -> bool:
        """Apply ``weights`` (default: the applied ones) and the shadow (default: as it
        is; None removes it) as one new revision. False, with :attr:`error` set, when the
        change is refused; nothing is changed then."""
        content: dict[str, Any] = {"weights": weights if weights is not None else self.weights}
        content["shadow"] = self.shadow if shadow is KEEP else (shadow or "")
        content["shadowPercent"] = (shadow_percent if shadow_percent is not None
                                    else self.shadow_percent)
        return self._apply(content)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "apply":
            self._apply(content)
        elif isinstance(content, dict) and content.get("type") == "refresh":
            self.refresh()

    def _apply(self, content: Any) -> bool:
        self.busy = True
        try:
            request = parse_apply(content)
            self._overlay.set_traffic(request.weights, shadow=request.shadow,
                                      shadow_percent=request.shadow_percent,
                                      message="traffic splitter")
        except ConflictError as err:
            self.error = {"field": "", "message": f"{err} (the splitter now shows the "
                          "current weights: check them and apply again)"}
            self._overlay.refresh()
            self._show()
            return False
        except Exception as err:  # shown inline: a button never raises into the notebook
            self.error = error_of(err)
            return False
        finally:
            self.busy = False
        self.error = {}
        self._show()
        self._watch_status()
        return True

    # -- what the gateway made of it ---------------------------------------------------------

    def _read_status(self) -> bool:
        """Show the gateway's status of the stored revision; True once settled."""
        try:
            status = self._overlay.status()
        except OverlayError as err:
            self.status_text = f"status unavailable: {err}"
            return True
        serving = status.serving_revision
        self.applied_revision = serving
        self.propagation_ms = status.propagation_ms if serving == status.revision else None
        with self._status_lock:
            self.status_text = status_text(status.revision, status.state, serving,
                                           status.propagation_ms, status.message)
        return status.state in ("no gateway", "failed") or serving == status.revision

    def _watch_status(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self._stop = stop = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + STATUS_WAIT_S
            while not stop.is_set() and not self._read_status():
                if time.monotonic() > deadline:
                    late = f" (not applied after {STATUS_WAIT_S:g} s)"
                    with self._status_lock:
                        if not self.status_text.endswith(late):
                            self.status_text = self.status_text + late
                    return
                stop.wait(STATUS_POLL_S)

        self._watcher = threading.Thread(target=watch, name="overlay-splitter-status",
                                         daemon=True)
        self._watcher.start()

    def wait(self, timeout: float = STATUS_WAIT_S + 1) -> TrafficSplitter:
        """Wait until the gateway applied the last change (or said why not)."""
        if self._watcher is not None:
            self._watcher.join(timeout)
        return self

    def close(self) -> None:
        """Stop watching the gateway's status, then close the widget."""
        stop = getattr(self, "_stop", None)  # (not there when __init__ refused its input)
        if stop is not None:
            stop.set()
            if self._watcher is not None:
                self._watcher.join(5)
        super().close()
