"""The generated AIOverlay CRD: checked in, structural, described, bounded.

The verdicts of the CRD against the SDK's on a corpus are in tests/test_crd_cel.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from overlay_sdk.crd import crd, crd_yaml, main, structural_schema
from overlay_sdk.crd_cel import crd_errors, schema_errors

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


INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def test_schema_is_structural_and_described() -> None:
    schema = structural_schema()
    for path, node in _walk(schema):
        if node.get("x-kubernetes-int-or-string"):
            # the one union a structural schema allows, spelled exactly so
            assert "type" not in node and node.get("anyOf") == INT_OR_STRING, path
        else:
            assert "type" in node, f"{path} has no type"
            assert "anyOf" not in node, path
        forbidden = {"$ref", "oneOf", "allOf", "not", "const", "title", "default", "nullable"}
        assert not forbidden & set(node), path
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: every list is bounded"
        if path.startswith((".spec", ".status")) and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description (kubectl explain)"
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"] and rule["message"], path
    routes = schema["properties"]["spec"]["properties"]["routes"]
    assert routes["maxItems"] == 16
    weight = routes["items"]["properties"]["weight"]
    assert (weight["type"], weight["minimum"], weight["maximum"]) == ("integer", 0, 100)
    assert schema["properties"]["status"]["properties"]["conditions"]["maxItems"] == 16


def test_metadata_constrains_only_the_name() -> None:
    # The API server refuses a CRD whose metadata schema says more (not even a description).
    metadata = structural_schema()["properties"]["metadata"]
    assert set(metadata) == {"type", "properties"} and metadata["type"] == "object"
    assert set(metadata["properties"]) == {"name"}
    assert metadata["properties"]["name"]["maxLength"] == 63


def test_patterns_compile_as_re2() -> None:
    import re2  # type: ignore[import-untyped]  # Go regexp syntax, as the API server uses

    for path, node in _walk(structural_schema()):
        if "pattern" in node:
            re2.compile(node["pattern"])
        assert "\\S" not in node.get("pattern", ""), f"{path}: \\S means ASCII only in Go"


def test_descriptions_come_from_the_pydantic_fields() -> None:
    doc = yaml.safe_load(CHECKED_IN.read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "summing to 100" in spec["properties"]["routes"]["description"]
    timeout = spec["properties"]["slo"]["properties"]["timeoutMs"]
    assert timeout["exclusiveMinimum"] is True and timeout["minimum"] == 0
    assert "Default: 800" in timeout["description"]


def test_names_subresources_and_columns() -> None:
    spec = crd()["spec"]
    names = spec["names"]
    assert names["shortNames"] == ["aio"] and "overlays" in names["categories"]
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    assert (version["served"], version["storage"]) == (True, True)
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert {"Mode", "Routes", "Shadow", "Ready", "Age"} <= set(columns)
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == {"name": "Age", "type": "date",
                              "jsonPath": ".metadata.creationTimestamp"}
    schema = version["schema"]["openAPIV3Schema"]
    for column in columns.values():  # each column reads a field of the schema's type
        if column["jsonPath"].startswith(".metadata."):
            continue  # set by the API server
        node = schema
        for part in re.sub(r"\[.*?\]", "[]", column["jsonPath"]).split(".")[1:]:
            node = node["properties"][part.removesuffix("[]")]
            node = node["items"] if part.endswith("[]") else node
        assert node["type"] == column["type"], column


def test_status_conditions_have_the_metav1_condition_shape() -> None:
    status = structural_schema()["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    props = item["properties"]
    assert props["status"]["enum"] == ["True", "False", "Unknown"]
    assert props["lastTransitionTime"]["format"] == "date-time"
    assert (props["reason"]["minLength"], props["reason"]["maxLength"]) == (1, 1024)
    assert props["type"]["maxLength"] == 316 and props["message"]["maxLength"] == 32768
    assert {"observedGeneration", "conditions", "revision", "appliedAt", "endpoints"} == set(
        status
    )


def test_header_and_readme_carry_the_conversion_plan() -> None:
    assert "deploy/crds/README.md" in crd_yaml().split("apiVersion:")[0]
    readme = (ROOT / "deploy" / "crds" / "README.md").read_text()
    for word in ("v1beta1", "storage", "served", "conversion webhook", "None", "storedVersions"):
        assert word in readme, word


def test_sample_resource_validates_against_crd_schema() -> None:
    sample: dict[str, Any] = {
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
    assert crd_errors(sample) == []
    sample["spec"]["routes"][0]["weight"] = 101
    sample["spec"]["slo"]["timeoutMs"] = 0
    bad = {e.path for e in schema_errors(sample)}
    assert bad == {"spec.routes[0].weight", "spec.slo.timeoutMs"}


@pytest.mark.parametrize("kubernetes", ["1.28.0", "1.31.0"])
def test_crd_is_a_valid_customresourcedefinition(kubernetes: str) -> None:
    """Every field of the CRD object (validation rules, printer columns...) is one the
    API server knows, from 1.28 on (kubernetes-validate bundles its OpenAPI)."""
    import kubernetes_validate  # type: ignore[import-untyped]

    kubernetes_validate.validate(yaml.safe_load(CHECKED_IN.read_text()), kubernetes, strict=True)
