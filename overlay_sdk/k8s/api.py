"""Small helpers over the official ``kubernetes`` client shared by the Kubernetes store
(:mod:`overlay_sdk.store.kubernetes`) and the operator (:mod:`overlay_sdk.k8s.cluster`):
where the kubeconfig is, whether this process runs in a pod, what an error answer says.
No kopf, no I/O beyond looking at files and the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config

__all__ = ["PLURAL", "api_message", "in_pod", "kubeconfig_files"]

#: the plural of the AIOverlay resource (its URL segment)
PLURAL = "aioverlays"


def kubeconfig_files() -> tuple[str, list[str]]:
    """The kubeconfig setting (``$KUBECONFIG``, else ``~/.kube/config``) and those of its
    files that exist, as kubectl reads them (``$KUBECONFIG`` may list several)."""
    setting = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    paths = [p for p in setting.split(os.pathsep) if p]
    return setting, [p for p in paths if Path(p).expanduser().is_file()]


def in_pod(token_file: str = incluster_config.SERVICE_TOKEN_FILENAME) -> bool:
    """Whether this process runs in a pod with a service account token."""
    return bool(os.environ.get(incluster_config.SERVICE_HOST_ENV_NAME)) and Path(
        token_file).is_file()


def api_message(err: ApiException) -> str:
    """The API server's own message in an error answer (its ``Status.message``), else the
    HTTP reason, else ``no reason given``."""
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.reason or "").strip() or "no reason given"
