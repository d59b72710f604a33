"""Change summaries written with every revision."""

from __future__ import annotations

from typing import Any

from overlay_sdk.diff import describe_change


def doc(routes: dict[str, int], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "o"},
        "spec": {
            "host": {"url": "http://h"},
            "mode": "passthrough",
            "routes": [
                {"model": k.split(":")[0], "version": k.split(":")[1], "weight": w}
                for k, w in routes.items()
            ],
            **spec,
        },
    }


def test_created_and_deleted() -> None:
    new = doc({"m:1": 100})
    assert describe_change(None, new) == "created: mode passthrough, routes m:1 100"
    assert describe_change(new, None) == "deleted"


def test_weight_changes() -> None:
    old, new = doc({"a:1": 90, "a:2": 10}), doc({"a:1": 95, "a:2": 5})
    assert describe_change(old, new) == "routes a:1 90->95, a:2 10->5"


def test_added_and_removed_routes_and_shadow() -> None:
    old = doc({"a:1": 90, "a:2": 10})
    new = doc({"a:1": 99, "a:3": 1}, shadow={"model": "a", "version": "2", "percent": 100})
    assert describe_change(old, new) == "routes a:1 90->99, +a:3 1, -a:2; shadow none -> a:2 100%"


def test_other_fields_and_no_change() -> None:
    old = doc({"a:1": 100})
    new = doc({"a:1": 100}, mode="shadow", match={"method": "POST", "path": "/s"})
    assert describe_change(old, new) == (
        "match.method unset -> POST; match.path unset -> /s; mode passthrough -> shadow"
    )
    assert describe_change(old, old) == "no change"
