"""The generated AIOverlay CRD: checked in, structural, and agreeing with the SDK's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from overlay_sdk.crd import crd_yaml, main, structural_schema

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "deploy" / "crds" / "aioverlay.yaml"


def test_checked_in_crd_matches_generated() -> None:
    assert CHECKED_IN.read_text() == crd_yaml(), "deploy/crds/aioverlay.yaml is stale: make crd"


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "crd.yaml"
    assert main(["-o", str(target), "--check"]) == 1
    assert "make crd" in capsys.readouterr().err
    assert main(["-o", str(target)]) == 0
    assert main(["-o", str(target), "--check"]) == 0


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        found += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural_and_described() -> None:
    schema = structural_schema()
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        forbidden = {"$ref", "anyOf", "oneOf", "allOf", "const", "title", "default"}
        assert not forbidden & set(node), path
        assert node.get("additionalProperties") is not False, path
        if path.startswith(".spec") and path.count(".") >= 1 and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description (kubectl explain)"
    routes = schema["properties"]["spec"]["properties"]["routes"]
    assert routes["maxItems"] == 16
    weight = routes["items"]["properties"]["weight"]
    assert (weight["type"], weight["minimum"], weight["maximum"]) == ("integer", 0, 100)


def test_descriptions_come_from_the_pydantic_fields() -> None:
    doc = yaml.safe_load(CHECKED_IN.read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "summing to 100" in spec["properties"]["routes"]["description"]
    timeout = spec["properties"]["slo"]["properties"]["timeoutMs"]
    assert timeout["exclusiveMinimum"] is True and timeout["minimum"] == 0
    assert "Default: 800" in timeout["description"]


def _validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(structural_schema())  # OpenAPI 3.0 ~ draft 4 bounds


def test_sample_resource_validates_against_crd_schema() -> None:
    sample = {
        "apiVersion": "overlays.aioverlay.dev/v1alpha1",
        "kind": "AIOverlay",
        "metadata": {"name": "sales-copilot"},
        "spec": {
            "host": {"url": "http://crm.internal:8080"},
            "mode": "overlay",
            "routes": [{"model": "copilot", "version": "3", "weight": 80},
                       {"model": "copilot", "version": "4", "weight": 20}],
            "shadow": {"model": "copilot", "version": "5", "percent": 100},
            "injection": {"kind": "chat-bubble", "selector": "body", "path": "/crm/*"},
            "slo": {"timeoutMs": 800, "p99Ms": 300},
            "placement": {"tier": "edge", "gpu": {"memoryGiB": 6, "fraction": 0.25}},
        },
    }
    assert list(_validator().iter_errors(sample)) == []
    sample["spec"]["routes"][0]["weight"] = 101
    sample["spec"]["slo"]["timeoutMs"] = 0
    bad = {tuple(e.absolute_path) for e in _validator().iter_errors(sample)}
    assert bad == {("spec", "routes", 0, "weight"), ("spec", "slo", "timeoutMs")}
