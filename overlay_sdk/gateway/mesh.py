"""The gateway in a service mesh (``overlay gateway --shadow mesh``, a cluster). Pure.

In a cluster the operator renders, per overlay, an Istio ``VirtualService`` on the
overlay's models Service (:mod:`overlay_sdk.k8s.render`): a route per version matching
the ``x-overlay-version`` header, a weighted default route, and a mirror of every primary
route to the gateway's models port (whatever the shadow version is). There the gateway:

- still picks the version of each invoke by the overlay's RoutePlan, and calls a
  self-hosted version (MLflow model, container image) at the models Service with
  ``x-overlay-version: MODEL:VERSION``; Istio routes it to the version's model server and
  mirrors it to the shadow version, so the gateway forks no shadow copy of it. A provider
  version (OpenAI, Anthropic...) is called by the gateway directly: Istio never sees that
  call, so the gateway forks its shadow copy itself, as outside the mesh;
- answers, on its models port, what Istio sends to provider versions (routed by the
  weighted route) and every mirrored copy: ``POST /invocations`` in MLflow's scoring
  format, the version named by ``x-overlay-version``; a mirrored copy carries Istio's
  ``-shadow`` suffix on its Host and is answered by the overlay's shadow version (the
  header then still names the primary route's version, or nothing). A provider shadow is
  called directly; a self-hosted one through the mesh, at the models Service with
  ``x-overlay-version: <shadow>``, as the invoke path calls it: that header's route goes to
  the shadow's subset and carries no mirror, so the call is not mirrored back (no loop).
  Any other call to a self-hosted version on the models port is refused (421): the mesh
  routes those to its model server. Envoy discards the answer to a mirrored copy.

Who records what in telemetry: the side that makes a model call records it, once. The
invoke path records its primary calls (through the mesh or to a provider) and the shadow
copies it forks; the models port records what it answers, as ``shadow`` for a mirrored
copy, else ``primary`` (a caller in the mesh that used the models Service, never the
gateway's own invoke path, which does not send provider calls through the mesh). The
model servers record nothing, which is why every mirror goes through the gateway: a
self-hosted shadow's output is recorded (role ``shadow``, with its output, latency and
cost) by the models port that called it.

This module holds the pure parts: reading Istio's mirror suffix, the overlay a models
Service host names, and MLflow scoring bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from overlay_sdk.errors import PayloadError

__all__ = ["MIRROR_SUFFIX", "SCORING_KEYS", "MirrorHost", "chat_inputs", "mirror_host",
           "overlay_label", "scoring_inputs"]

MIRROR_SUFFIX = "-shadow"  # Envoy appends it to the Host of a mirrored request
SCORING_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances", "messages")


class MirrorHost(NamedTuple):
    """Whether a request was mirrored, and its host name (no port, no mirror suffix)."""

    mirrored: bool
    name: str


def mirror_host(host: str | None) -> MirrorHost:
    """Whether ``host`` (a Host header) is that of a request Istio mirrored, and the host
    name. Envoy puts the suffix on the host name (``models.ns.svc-shadow:8080``); older
    versions put it after the port (``models.ns.svc:8080-shadow``): both are read."""
    text = (host or "").strip().lower()
    mirrored = False
    if text.endswith(MIRROR_SUFFIX):  # after the port, or a Host without one
        text, mirrored = text[: -len(MIRROR_SUFFIX)], True
    if text.startswith("["):  # an IPv6 address
        name = text[: text.find("]") + 1] if "]" in text else text
    else:
        name = text.rpartition(":")[0] if ":" in text else text
    if name.endswith(MIRROR_SUFFIX):
        name, mirrored = name[: -len(MIRROR_SUFFIX)], True
    return MirrorHost(mirrored, name)


def overlay_label(host_name: str) -> str | None:
    """The overlay whose models Service ``host_name`` is (``sales-copilot-models.team-a.svc
    .cluster.local`` -> ``sales-copilot``), else None."""
    label = host_name.split(".", 1)[0]
    name = label.removesuffix("-models")
    return name if name and name != label else None


def scoring_inputs(document: Any) -> Any:
    """The invoke ``inputs`` of an MLflow scoring request body: ``dataframe_split``
    (``columns`` and ``data``), ``dataframe_records``, ``inputs``, ``instances``, or a chat
    request (``messages`` and settings). PayloadError naming the field at fault."""
    if not isinstance(document, Mapping):
        raise PayloadError("body", f"give a JSON object with one of {', '.join(SCORING_KEYS)} "
                           "(MLflow's scoring format)")
    given = [k for k in SCORING_KEYS if k in document]
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        raise PayloadError("body", f"give exactly one of {', '.join(SCORING_KEYS)} "
                           f"(MLflow's scoring format); got {what}")
    key = given[0]
    if key == "messages":  # a chat request: messages beside its settings
        return dict(document)
    value = document[key]
    if key != "dataframe_split":
        return value
    if not isinstance(value, Mapping):
        raise PayloadError("dataframe_split", 'give {"columns": [...], "data": [[...], ...]}')
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError("dataframe_split.columns", "give the column names, a list of "
                           "strings")
    if not isinstance(data, list) or not data:
        raise PayloadError("dataframe_split.data", "give the rows, a list of lists of values")
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise PayloadError(f"dataframe_split.data[{i}]", f"give {len(columns)} values, "
                               "one per column")
        rows.append(dict(zip(columns, row, strict=True)))
    return rows


def chat_inputs(inputs: Any) -> Any:
    """A chat version's inputs from a scoring body's one record: its ``messages`` (with the
    settings beside them) or its ``prompt``. A copy Istio mirrored from a self-hosted chat
    model to a provider version comes so (``dataframe_split`` with a ``messages`` column);
    other inputs are left as they are."""
    if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], Mapping):
        row = inputs[0]
        if "messages" in row:
            return {k: v for k, v in row.items() if v is not None}
        if set(row) == {"prompt"} and isinstance(row["prompt"], str):
            return row["prompt"]
    return inputs
