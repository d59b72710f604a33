"""Widgets beside a running gateway: the TrafficSplitter shows when its change is applied and
how long it took (issue 7)."""

from __future__ import annotations

from overlay_sdk.client import ControlPlane
from overlay_sdk.widgets import TrafficSplitter


def test_the_splitter_shows_the_applied_revision_and_its_propagation_time(
        plane: ControlPlane, legacy_url: str) -> None:
    o = plane.overlays.create("split-watch", host=legacy_url,
                              routes={"fraud:1": 90, "fraud:2": 10})
    try:
        with plane.start_gateway(port=0) as gw:
            gw.wait(o)
            splitter = TrafficSplitter(o)
            assert splitter.applied_revision == o.revision
            assert splitter.apply({"fraud:1": 50, "fraud:2": 50})
            splitter.wait()
            assert splitter.applied_revision == splitter.revision == o.revision
            assert splitter.propagation_ms is not None and splitter.propagation_ms >= 0
            assert splitter.status_text.startswith(f"revision {o.revision} applied by the "
                                                   "gateway in ")
            splitter.close()
    finally:
        plane.overlays.delete("split-watch")
