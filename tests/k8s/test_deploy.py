"""``deploy/``: what ``kubectl apply -k deploy/`` installs, checked without a cluster.

- every manifest under ``deploy/`` passes Kubernetes' own schema (``kubernetes_validate``,
  1.31, strict: no unknown fields), and the kustomization lists every one of them;
- ``kubectl kustomize`` builds it (where kubectl is installed), and the RoleBindings' subjects
  follow the namespace it is installed into;
- the operator Deployment is non-root without a fixed UID, read-only root, drops every
  capability, requests CPU and memory, probes kopf's health endpoint on the port its
  ``--liveness`` serves, runs the ``overlay`` image with arguments ``overlay operator run``
  accepts, under the ServiceAccount the operator's Role is bound to;
- RBAC is namespaced and least-privilege in form (no wildcards, no Secrets; the calls
  themselves are checked in ``test_operator.py``); the gateway's ServiceAccount is the one the
  renderer names;
- the Dockerfiles: numeric non-root USER, group-0 permissions for OpenShift's arbitrary UIDs,
  ``ENTRYPOINT ["overlay"]``, ``mlflow`` on the model server's PATH, and sources that exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from overlay_sdk.cli_operator import operator
from overlay_sdk.k8s.manifests import RenderSettings
from tests.k8s import schemas

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGES = DEPLOY / "images"


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def every_object() -> list[dict[str, Any]]:
    return [d for p in manifest_files() for d in documents(p)]


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in every_object()
                if d["kind"] == kind and d["metadata"]["name"] == name)


def kustomization() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return found


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        assert schemas.core_problems(doc) == []
        if doc["kind"] != "CustomResourceDefinition":  # named plural.group, a DNS subdomain
            assert schemas.semantic_problems(doc) == []
        assert "namespace" not in doc["metadata"], "the kustomization sets the namespace"


def test_the_kustomization_lists_every_manifest() -> None:
    listed = kustomization()["resources"]
    assert sorted(listed) == sorted(str(p.relative_to(DEPLOY)) for p in manifest_files())
    assert kustomization()["namespace"] == "overlays"


def _kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # (an extra check: the kustomization's file list is tested without it)
        pytest.skip("kubectl is not installed: `kubectl kustomize deploy/` is checked where "
                    "it is")
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_kustomize_builds_it_into_one_namespace(tmp_path: Path) -> None:
    built = _kustomize(DEPLOY)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in built)
    assert kinds == sorted(f"{d['kind']}/{d['metadata']['name']}" for d in every_object())
    for doc in built:
        if doc["kind"] != "CustomResourceDefinition":
            assert doc["metadata"]["namespace"] == "overlays", doc["metadata"]["name"]
        for subject in doc.get("subjects", []):
            assert subject["namespace"] == "overlays"
    # installed elsewhere: the subjects follow
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    text = (copy / "kustomization.yaml").read_text().replace("namespace: overlays",
                                                              "namespace: team-a")
    (copy / "kustomization.yaml").write_text(text)
    bindings = [d for d in _kustomize(copy) if d["kind"] == "RoleBinding"]
    assert len(bindings) == 2
    assert all(s["namespace"] == "team-a" for d in bindings for s in d["subjects"])


def _walk(value: Any) -> list[tuple[str, Any]]:
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((key, item))
            out += _walk(item)
    elif isinstance(value, list):
        for item in value:
            out += _walk(item)
    return out


def test_the_operator_deployment_is_locked_down_and_probed() -> None:
    deployment = find("Deployment", "overlay-operator")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert not {k for k, _ in _walk(deployment)} & {"runAsUser", "runAsGroup", "fsGroup"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # the probes ask kopf's health endpoint, where --liveness serves it
    args = container["args"]
    liveness = next(a.split("=", 1)[1] for a in args if a.startswith("--liveness="))
    port_number = int(re.search(r":(\d+)/", liveness).group(1))  # type: ignore[union-attr]
    path = "/" + liveness.split("/", 3)[3]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        action = container[probe]["httpGet"]
        assert action["path"] == path and ports[action["port"]] == port_number
    # one image for the gateway and the operator: the one the renderer puts in front of hosts
    assert container["image"] == RenderSettings().gateway_image
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["OVERLAY_REGISTRY_URI"]["value"] == RenderSettings().tracking_uri
    assert pod["serviceAccountName"] == "overlay-operator"
    assert find("ServiceAccount", "overlay-operator")


def test_the_operator_arguments_are_ones_the_command_accepts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's args, as kubelet expands them, parse as `overlay operator run`."""
    monkeypatch.delenv("OVERLAY_REGISTRY_URI", raising=False)
    container = find("Deployment", "overlay-operator")["spec"]["template"]["spec"][
        "containers"][0]
    args = [a.replace("$(POD_NAMESPACE)", "overlays") for a in container["args"]]
    assert args[:2] == ["operator", "run"]
    context = operator.make_context("operator", args[1:2], resilient_parsing=True)
    command = operator.get_command(context, "run")
    assert command is not None
    params = command.make_context("run", args[2:]).params
    assert params["namespaces"] == ("overlays",)
    assert params["liveness"] == "http://0.0.0.0:8080/healthz"
    assert params["registry_uri"] is None  # from $OVERLAY_REGISTRY_URI in the pod
    help_text = CliRunner().invoke(operator, ["run", "--help"]).output
    assert "--liveness" in help_text


def test_rbac_is_namespaced_and_bound() -> None:
    for name in ("overlay-operator", "overlay-gateway"):
        role = find("Role", name)
        binding = find("RoleBinding", name)
        assert find("ServiceAccount", name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name,
                                        "namespace": "overlays"}]
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
            assert not {"secrets", "pods/exec", "roles", "rolebindings"} & set(rule["resources"])
    assert not [d for d in every_object() if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    gateway_rules = find("Role", "overlay-gateway")["rules"]
    assert {v for r in gateway_rules for v in r["verbs"]} == {"get", "list", "watch"}
    assert RenderSettings().gateway_service_account == "overlay-gateway"


def dockerfile(name: str) -> str:
    return (IMAGES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["overlay.Dockerfile", "model-server.Dockerfile"])
def test_images_run_as_any_non_root_uid(name: str) -> None:
    text = dockerfile(name)
    users = re.findall(r"^USER\s+(\S+)\s*$", text, flags=re.M)
    assert users and re.fullmatch(r"[1-9][0-9]{3,}(:0)?", users[-1]), users
    # OpenShift runs an arbitrary UID in group 0: what it needs is group 0's, with the
    # owner's permissions
    assert re.search(r"chgrp -R 0 ", text) and re.search(r"chmod -R g=u ", text)
    assert re.search(r"^ENV .*HOME=/tmp", text, flags=re.M | re.S)
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / source).exists(), f"{name} copies {source}, which is not in the repo"
    assert text.count("FROM python:3.11-slim") == 2  # a build stage and a clean runtime


def test_the_overlay_image_is_the_overlay_command() -> None:
    text = dockerfile("overlay.Dockerfile")
    assert '\nENTRYPOINT ["overlay"]\n' in text
    assert '.[k8s]' in text  # kopf and the kubernetes client: the operator, k8s:// stores
    assert RenderSettings().gateway_image in text
    ports = {str(RenderSettings().gateway_port), str(RenderSettings().gateway_models_port)}
    assert ports <= set(re.search(r"^EXPOSE (.*)$", text, flags=re.M).group(1).split())  # type: ignore[union-attr]


def test_the_model_server_image_has_mlflow_on_its_path() -> None:
    text = dockerfile("model-server.Dockerfile")
    assert re.search(r'pip install "mlflow>=3\.1,<4"', text)
    venv = re.search(r"python -m venv (\S+)", text).group(1)  # type: ignore[union-attr]
    assert re.search(rf"ENV PATH={re.escape(venv)}/bin:\$PATH", text)
    assert RenderSettings().model_server_image in text
    assert str(RenderSettings().model_server_port) in re.search(  # type: ignore[union-attr]
        r"^EXPOSE (.*)$", text, flags=re.M).group(1)
