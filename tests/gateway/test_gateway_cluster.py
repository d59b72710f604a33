"""The gateway as the operator deploys it (issue: cluster mode): one overlay, read from the
Kubernetes store on kmock's emulated API server (``tests/kmock_support.py``), behind Istio
(``shadow="mesh"``), which a stub models Service stands in for.

Checked: ``/readyz`` is 503 (saying why) until the overlay is applied, then 200; other
overlays of the namespace are ignored; self-hosted versions are called at the models URL
with ``x-overlay-version`` in MLflow's scoring format and no shadow copy is forked for
them (Istio mirrors); a weight change written through the store is applied; a provider
version is called directly and its shadow forked by the gateway; the models port answers
the mesh's calls (mirrored copies by the shadow version, recorded as shadow; a self-hosted
shadow's called through the mesh by its own header), each call recorded once; the errors
of the models port; ``overlay gateway`` from its environment, end to end in its own
process; the CLI's help and errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner
from providers_support import FakeProviders, LoopbackApp

from overlay_sdk.cli import cli
from overlay_sdk.client import connect
from overlay_sdk.gateway import GatewayConfig, GatewayHandle, start_gateway
from overlay_sdk.gateway.mesh import chat_inputs, mirror_host, overlay_label, scoring_inputs
from overlay_sdk.k8s.render import VERSION_HEADER, render
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.spec import parse_overlay
from overlay_sdk.store.kubernetes import KubernetesStore
from overlay_sdk.telemetry import read_calls
from tests.kmock_support import ClusterThread
from tests.process_support import terminate

NS = "team-a"
NAME = "sales"
OLLAMA = "/ollama/v1"  # the fake provider's keyless OpenAI-compatible API
MESSAGES = [{"role": "user", "content": "hello"}]
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], Any]:
    async def go() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as s, s.request(
                method, url, data=None if body is None else json.dumps(body),
                headers={"Content-Type": "application/json", **(headers or {})}) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)
    return asyncio.run(go())


def doc(routes: dict[str, int], shadow: str | None = None, name: str = NAME) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "host": {"url": "http://crm.internal:8080"},
        "routes": [{"model": k.split(":")[0], "version": k.split(":")[1], "weight": w}
                   for k, w in routes.items()],
        "sticky": {"header": "x-user-id"},
        "slo": {"timeoutMs": 2000},
    }
    if shadow is not None:
        spec["shadow"] = {"model": shadow.split(":")[0], "version": shadow.split(":")[1],
                          "percent": 100}
    return {"metadata": {"name": name}, "spec": spec}


@dataclass
class Seen:
    """A request the stub models Service received."""

    method: str
    path: str
    version: str | None
    body: Any


class ModelsService:
    """Stands in for the overlay's models Service behind Istio: MLflow model servers
    answering ``/ping`` and ``/invocations``; the prediction names the version the
    ``x-overlay-version`` header asked for. ``/ping`` waits while ``hold`` is set."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.hold = threading.Event()
        app = web.Application()
        app.router.add_get("/ping", self._ping)
        app.router.add_post("/invocations", self._invocations)
        self._app = LoopbackApp(app)
        self.url = ""

    async def _ping(self, request: web.Request) -> web.Response:
        self.seen.append(Seen("GET", "/ping", request.headers.get(VERSION_HEADER), None))
        while self.hold.is_set():
            await asyncio.sleep(0.01)
        return web.Response(text="\n")

    async def _invocations(self, request: web.Request) -> web.Response:
        body = await request.json()
        version = request.headers.get(VERSION_HEADER)
        self.seen.append(Seen("POST", "/invocations", version, body))
        rows = body["dataframe_split"]["data"]
        return web.json_response({"predictions": [f"{version} says yes"] * len(rows)})

    def calls(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/invocations"]

    def start(self) -> None:
        self.url = self._app.start()

    def stop(self) -> None:
        self._app.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelRegistry, Path]]:
    """scorer:1 and scorer:2 (MLflow models, never loaded here: the mesh serves them),
    chat:1 and chat:2 (a keyless OpenAI-compatible provider), boxed:1 (an image)."""
    home = tmp_path_factory.mktemp("cluster-registry")
    with connect(home) as cp:
        for answer in (1, 2):
            cp.models.register("scorer", model=lambda frame, a=answer: [a] * len(frame),
                               flavor="pyfunc")
        for temperature in (0.2, 0.7):
            cp.models.register("chat", provider="ollama",
                               params={"model": "llama3.2", "temperature": temperature})
        cp.models.register("boxed", image="ghcr.io/acme/boxed:1", port=9000)
        yield cp.models, home


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterThread]:
    with ClusterThread(namespaces=("default", NS)) as running:
        yield running


@pytest.fixture(scope="module")
def models() -> Iterator[ModelsService]:
    service = ModelsService()
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def writer(cluster: ClusterThread) -> Iterator[KubernetesStore]:
    """The store as the SDK (a notebook, ``overlay apply``) writes through it."""
    with KubernetesStore(NS, cluster.api_client()) as store:
        yield store


@dataclass
class Cluster:
    gw: GatewayHandle
    writer: KubernetesStore
    models: ModelsService
    fake: FakeProviders
    telemetry: str

    def invoke(self, user: str, inputs: Any) -> tuple[int, dict[str, str], Any]:
        return http("POST", f"{self.gw.url}/_overlay/{NAME}/invoke", {"inputs": inputs},
                    {"x-user-id": user})

    def readyz(self) -> tuple[int, Any]:
        status, _, body = http("GET", f"{self.gw.url}/readyz")
        return status, body

    def mesh(self, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """A call as Istio sends it to the gateway's models port."""
        url = self.gw.gateway.models_listen_url
        return http("POST", f"{url}/invocations", body, headers)

    def calls(self) -> Any:
        self.gw.flush()
        return read_calls(self.telemetry, overlay=NAME)

    def serve(self, routes: dict[str, int], shadow: str | None = None) -> int:
        """Apply a revision of ``sales`` through the store; wait until the gateway serves
        it. Its revision number."""
        rev = self.writer.apply(parse_overlay(doc(routes, shadow)))
        self.gw.wait(NAME, rev.revision, timeout=10)
        return rev.revision

    def count(self, at_least: int) -> Any:
        """The calls recorded, once there are ``at_least``."""
        found: list[Any] = []
        wait_for(f"{at_least} records", lambda: found.append(self.calls())
                 or len(found[-1]) >= at_least)
        return found[-1]


@pytest.fixture(scope="module")
def running(cluster: ClusterThread, registry: tuple[ModelRegistry, Path], models: ModelsService,
            writer: KubernetesStore, fake: FakeProviders,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A mesh-mode gateway of overlay ``sales`` over the Kubernetes store, before
    ``sales`` exists; another overlay of the namespace exists already."""
    writer.apply(parse_overlay(doc({"scorer:2": 100}, name="other")))
    home = tmp_path_factory.mktemp("cluster-gateway")
    telemetry = f"sqlite:///{home / 'telemetry.db'}"
    store = KubernetesStore(NS, cluster.api_client(), poll_interval=0.05)
    config = GatewayConfig(port=0, overlay=NAME, shadow="mesh", models_url=models.url,
                           models_port=0, telemetry_url=telemetry,
                           endpoints={"chat:1": fake.url + OLLAMA, "chat:2": fake.url + OLLAMA})
    gw = start_gateway(store, registry[0], home, config)
    try:
        yield Cluster(gw, writer, models, fake, telemetry)
    finally:
        gw.stop()


# -- cluster mode ---------------------------------------------------------------------------


def test_ready_only_once_its_overlay_is_loaded_and_applied(running: Cluster) -> None:
    status, body = running.readyz()
    assert status == 503, body
    assert body["status"] == "not ready" and "'sales'" in body["reason"]
    assert "not in the store" in body["reason"]
    live, _, _ = http("GET", f"{running.gw.url}/healthz")
    assert live == 200  # alive all along

    running.models.hold.set()  # the model server's health check hangs for now
    rev = running.writer.apply(parse_overlay(doc({"scorer:1": 100}, shadow="chat:1")))
    status, body = wait_for("the overlay seen, loading", lambda: (
        lambda r: r if r[1]["overlays"].get(NAME, {}).get("state") == "loading" else None)(
        running.readyz()))
    assert status == 503 and "not applied yet" in body["reason"], body
    running.models.hold.clear()
    status, body = wait_for("/readyz 200", lambda: (lambda r: r if r[0] == 200 else None)(
        running.readyz()))
    assert body["overlays"][NAME] == {"state": "serving", "revision": rev.revision,
                                      "serving": rev.revision}
    # the health check went through the mesh, to the version's subset
    assert any(s.path == "/ping" and s.version == "scorer:1" for s in running.models.seen)
    snapshot = running.gw.status()
    assert list(snapshot["overlays"]) == [NAME]  # "other" is not served here
    assert snapshot["ready"] is True and snapshot["shadowMode"] == "mesh"
    assert snapshot["models"]["scorer:1"]["state"] == "ready"


def test_self_hosted_versions_are_called_through_the_mesh_and_not_forked(
        running: Cluster) -> None:
    running.serve({"scorer:1": 100}, shadow="chat:1")
    before_mesh, before_fake = len(running.models.calls()), len(running.fake.requests)
    before = len(running.calls())
    row = {"amount": 12.5, "country": "FR"}
    status, headers, body = running.invoke("ada", row)
    assert status == 200, body
    assert headers["x-overlay-model-version"] == "scorer:1"
    assert body["outputs"] == ["scorer:1 says yes"]
    sent = running.models.calls()[-1]
    assert sent.version == "scorer:1"  # the header Istio routes on, as render writes it
    assert sent.body == {"dataframe_split": {"columns": ["amount", "country"],
                                             "data": [[12.5, "FR"]]}}
    assert len(running.models.calls()) == before_mesh + 1
    time.sleep(0.2)  # a fork would have reached the provider by now
    assert len(running.fake.requests) == before_fake  # Istio mirrors: no fork here
    calls = running.count(before + 1).iloc[before:]
    assert list(calls["role"]) == ["primary"] and list(calls["version"]) == ["1"]
    assert running.gw.status()["shadow"]["queued"] == 0


def test_a_weight_change_through_the_store_is_applied(running: Cluster) -> None:
    running.writer.apply(parse_overlay(doc({"scorer:1": 100}, name="other")))
    revision = running.serve({"scorer:1": 50, "scorer:2": 50}, shadow="chat:1")
    # the watch delivers in commit order: the other overlay's change came first, unheeded
    assert set(running.gw.gateway.reload.desired) == {NAME}
    assert list(running.gw.status()["overlays"]) == [NAME]
    seen: dict[str, str] = {}
    for i in range(24):
        status, headers, body = running.invoke(f"user-{i}", {"amount": float(i)})
        assert status == 200, body
        version = headers["x-overlay-model-version"]
        assert running.models.calls()[-1].version == version
        assert body["outputs"] == [f"{version} says yes"] and body["revision"] == revision
        seen[version] = f"user-{i}"
    assert set(seen) == {"scorer:1", "scorer:2"}
    for version, user in seen.items():  # sticky: the same key, the same version
        assert running.invoke(user, {"amount": 1.0})[1]["x-overlay-model-version"] == version
    status, body = running.readyz()
    assert status == 200 and body["overlays"][NAME]["revision"] == revision


def test_a_provider_version_is_called_directly_and_its_shadow_forked(
        running: Cluster) -> None:
    running.serve({"chat:2": 100}, shadow="chat:1")
    before_mesh, before_fake = len(running.models.calls()), len(running.fake.requests)
    before = len(running.calls())
    status, headers, body = running.invoke("ada", {"messages": MESSAGES})
    assert status == 200, body
    assert headers["x-overlay-model-version"] == "chat:2"
    assert body["outputs"]["content"] == "echo: hello"
    # Istio never sees a call to a provider: the gateway forks the shadow copy itself
    wait_for("the forked shadow call", lambda: len(running.fake.requests) == before_fake + 2)
    temperatures = sorted(r[1]["temperature"] for r in running.fake.requests[before_fake:])
    assert temperatures == [0.2, 0.7]  # chat:1 (shadow) and chat:2 (primary)
    assert len(running.models.calls()) == before_mesh
    calls = running.count(before + 2).iloc[before:]
    assert sorted(zip(calls["role"], calls["version"], strict=True)) == [
        ("primary", "2"), ("shadow", "1")]


def test_the_models_port_answers_the_mesh_and_records_each_call_once(
        running: Cluster) -> None:
    running.serve({"scorer:1": 100}, shadow="chat:1")
    status, _, _ = running.invoke("grace", [{"messages": MESSAGES}])
    assert status == 200
    sent = running.models.calls()[-1]  # what Istio got, and mirrors to the shadow
    assert sent.version == "scorer:1"
    before_fake, before = len(running.fake.requests), len(running.calls())
    models_host = f"{NAME}-models.{NS}.svc.cluster.local"
    # the mirrored copy: Envoy's -shadow suffix, the primary route's header
    status, headers, body = running.mesh(sent.body, {
        "Host": f"{models_host}-shadow:8080", VERSION_HEADER: "scorer:1"})
    assert status == 200, body
    assert headers["x-overlay-model-version"] == "chat:1"
    assert body == {"predictions": {"content": "echo: hello", "finish_reason": "stop"}}
    assert running.fake.requests[-1][1]["messages"] == MESSAGES
    # a call routed to a provider version (Istio's weighted route sets the header)
    status, headers, body = running.mesh({"messages": MESSAGES}, {
        "Host": f"{models_host}:8080", VERSION_HEADER: "chat:1"})
    assert status == 200 and headers["x-overlay-model-version"] == "chat:1", body
    assert len(running.fake.requests) == before_fake + 2
    calls = running.count(before + 2).iloc[before:]
    assert list(calls["role"]) == ["shadow", "primary"]
    assert list(calls["version"]) == ["1", "1"] and set(calls["model"]) == {"chat"}
    # each invoke is recorded once, by the invoke path: one primary per call so far
    everything = running.calls()
    invokes = everything[(everything["role"] == "primary") & (everything["model"] == "scorer")]
    assert len(invokes) == len(running.models.calls())


def test_a_mirrored_copy_for_a_self_hosted_shadow_is_called_through_the_mesh_and_recorded(
        running: Cluster) -> None:
    """render mirrors a self-hosted shadow to the models port too: the gateway calls the
    shadow through the mesh by its own header (whose route is not mirrored) and records it."""
    running.serve({"scorer:1": 100}, shadow="scorer:2")
    status, _, _ = running.invoke("grace", {"amount": 7.0, "country": "DE"})
    assert status == 200
    sent = running.models.calls()[-1]  # what Istio got, and mirrors to the gateway
    assert sent.version == "scorer:1"
    before_mesh, before = len(running.models.calls()), len(running.calls())
    models_host = f"{NAME}-models.{NS}.svc.cluster.local"
    status, headers, body = running.mesh(sent.body, {
        "Host": f"{models_host}-shadow:8080", VERSION_HEADER: "scorer:1"})
    assert status == 200, body
    assert headers["x-overlay-model-version"] == "scorer:2"
    assert body == {"predictions": ["scorer:2 says yes"]}  # to Envoy, which drops it
    # sent on through the mesh, by the shadow's header route (render: no mirror on it)
    assert len(running.models.calls()) == before_mesh + 1
    through = running.models.calls()[-1]
    assert through.version == "scorer:2" and through.body == sent.body
    calls = running.count(before + 1).iloc[before:]
    assert list(zip(calls["role"], calls["model"], calls["version"], calls["status"],
                    strict=True)) == [("shadow", "scorer", "2", "ok")]
    assert calls["output"].iloc[0] == ["scorer:2 says yes"]
    assert calls["latency_ms"].iloc[0] > 0 and calls["source"].iloc[0] == "invoke"
    assert calls["cost_nusd"].iloc[0] > 0  # its busy time at its rate, like any call
    assert (calls["input.amount"].iloc[0], calls["input.country"].iloc[0]) == (7.0, "DE")
    # the rendered VirtualService agrees: the header route of scorer:2 goes to its subset
    # and carries no mirror, so the gateway's call is not mirrored back to it
    manifests = render(parse_overlay(doc({"scorer:1": 100}, shadow="scorer:2")))
    (vs,) = [m for m in manifests if m["kind"] == "VirtualService"]
    (route,) = [r for r in vs["spec"]["http"]
                if r.get("match") == [{"headers": {VERSION_HEADER: {"exact": "scorer:2"}}}]]
    assert "mirror" not in route and route["route"][0]["destination"]["subset"] == "scorer-v2"
    assert all(r["mirror"]["host"].startswith(f"{NAME}-gateway.")
               for r in vs["spec"]["http"] if r is not route)
    # not mirrored: the model server's to answer, as before
    status, _, answer = running.mesh(sent.body, {
        "Host": f"{models_host}:8080", VERSION_HEADER: "scorer:2"})
    assert status == 421 and "model server" in answer["message"], answer
    assert len(running.models.calls()) == before_mesh + 1


def test_the_models_port_refuses_what_it_cannot_answer(running: Cluster) -> None:
    running.serve({"scorer:1": 100}, shadow="chat:1")
    host = {"Host": f"{NAME}-models.{NS}.svc.cluster.local:8080"}
    body = {"messages": MESSAGES}
    status, _, answer = running.mesh(body, host)
    assert status == 400 and VERSION_HEADER in answer["message"], answer
    status, _, answer = running.mesh(body, {**host, VERSION_HEADER: "scorer"})
    assert status == 400 and VERSION_HEADER in answer["message"], answer
    status, _, answer = running.mesh(body, {**host, VERSION_HEADER: "chat:9"})
    assert status == 404 and "chat:9" in answer["message"], answer
    # a self-hosted version is its model server's to answer, not the gateway's
    status, _, answer = running.mesh(body, {**host, VERSION_HEADER: "scorer:1"})
    assert status == 421 and "model server" in answer["message"], answer
    status, _, answer = running.mesh({"rows": []}, {**host, VERSION_HEADER: "chat:1"})
    assert status == 422 and "dataframe_split" in answer["message"], answer
    url = running.gw.gateway.models_listen_url
    status, _, answer = http("GET", f"{url}/ping")
    assert status == 200


def test_the_embedded_gateway_is_ready_once_every_live_overlay_serves(
        registry: tuple[ModelRegistry, Path], fake: FakeProviders, tmp_path: Path) -> None:
    """Without an overlay name (the embedded default): every live overlay counts."""
    from overlay_sdk.client import ControlPlane
    from overlay_sdk.store import LocalStore

    cp = ControlPlane(tmp_path, LocalStore(tmp_path / "overlays.db"), registry[0])
    try:
        with cp.start_gateway(port=0, endpoints={"chat:1": fake.url + OLLAMA}) as gw:
            status, _, body = http("GET", f"{gw.url}/readyz")
            assert status == 200 and body["reason"] == "no overlay to serve yet", body
            chat = cp.overlays.create("chat", host="http://127.0.0.1:9", routes={"chat:1": 100})
            gw.wait(chat)
            assert http("GET", f"{gw.url}/readyz")[0] == 200
            # an image without an endpoint can never load: the gateway is not ready for it
            boxed = cp.overlays.create("boxed", host="http://127.0.0.1:9",
                                       routes={"boxed:1": 100})
            status, _, body = wait_for("boxed failed", lambda: (
                lambda r: r if r[2]["overlays"].get("boxed", {}).get("state") == "loading"
                else None)(http("GET", f"{gw.url}/_overlay/readyz")))
            assert status == 503 and "'boxed'" in body["reason"], body
            assert body["overlays"]["chat"]["state"] == "serving"
            cp.overlays.delete(boxed.name)
            seen: list[object] = []

            def ready_again() -> bool:
                status, _, body = http("GET", f"{gw.url}/readyz")
                seen.append(body)
                return status == 200

            try:
                wait_for("ready again", ready_again)
            except AssertionError as err:
                raise AssertionError(f"{err}; /readyz said {seen[-1]!r}") from None
            assert gw.status()["shadowMode"] == "gateway"  # the embedded default
    finally:
        cp.close()


# -- the pure parts ---------------------------------------------------------------------------


def test_mirror_host_and_overlay_label() -> None:
    assert mirror_host("sales-models.a.svc.cluster.local-shadow:8080") == (
        True, "sales-models.a.svc.cluster.local")
    assert mirror_host("sales-models.a.svc.cluster.local:8080-shadow").mirrored is True
    assert mirror_host("Sales-Models.a.svc:8080") == (False, "sales-models.a.svc")
    assert mirror_host("[::1]:8701") == (False, "[::1]")
    assert mirror_host(None) == (False, "")
    assert overlay_label("sales-copilot-models.a.svc.cluster.local") == "sales-copilot"
    assert overlay_label("sales-copilot-gateway.a.svc") is None


def test_scoring_bodies() -> None:
    split = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}}
    assert scoring_inputs(split) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert scoring_inputs({"dataframe_records": [{"a": 1}]}) == [{"a": 1}]
    assert scoring_inputs({"inputs": {"a": [1, 2]}}) == {"a": [1, 2]}
    assert scoring_inputs({"messages": MESSAGES, "temperature": 0.1}) == {
        "messages": MESSAGES, "temperature": 0.1}
    for bad, field in (({}, "body"), ({"inputs": 1, "instances": 2}, "body"), ([], "body"),
                       ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
                        "dataframe_split.data[0]")):
        with pytest.raises(Exception) as caught:
            scoring_inputs(bad)
        assert getattr(caught.value, "field", None) == field
    assert chat_inputs([{"messages": MESSAGES, "temperature": None}]) == {"messages": MESSAGES}
    assert chat_inputs([{"prompt": "hi"}]) == "hi"
    assert chat_inputs([{"a": 1}, {"a": 2}]) == [{"a": 1}, {"a": 2}]


def test_the_gateway_speaks_the_header_render_routes_on() -> None:
    manifests = render(doc({"scorer:1": 80, "chat:1": 20}))
    vs = next(m for m in manifests if m["kind"] == "VirtualService")
    sticky = vs["spec"]["http"][0]["match"][0]["headers"]
    assert sticky == {VERSION_HEADER: {"exact": "scorer:1"}}
    gateway = next(m for m in manifests if m["kind"] == "Deployment"
                   and m["metadata"]["name"] == f"{NAME}-gateway")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e["value"] for e in container["env"]}
    # every setting the gateway reads from its environment is rendered
    for name in ("OVERLAY_STORE", "OVERLAY_REGISTRY_URI", "OVERLAY_NAME", "OVERLAY_SHADOW",
                 "OVERLAY_MODELS_URL", "OVERLAY_MODELS_PORT"):
        assert name in env
    assert env["OVERLAY_SHADOW"] == "mesh"


# -- overlay gateway --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_overlay_gateway_in_a_cluster_from_its_environment(
        cluster: ClusterThread, registry: tuple[ModelRegistry, Path], models: ModelsService,
        writer: KubernetesStore, tmp_path: Path) -> None:
    """The command, end to end in its own process, configured as render's Deployment does
    (a kubeconfig stands in for the pod's service account)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": cluster.url}}],
        "users": [{"name": "gateway", "user": {"token": "gateway-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "gateway"}}],
    }), encoding="utf-8")
    writer.apply(parse_overlay(doc({"scorer:2": 100}, name="remote")))
    port, models_port = _free_port(), _free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "OVERLAY_NAME": "remote",
           "OVERLAY_NAMESPACE": NS, "OVERLAY_HOST_URL": "http://crm.internal:8080",
           "OVERLAY_STORE": f"k8s:///{NS}",
           "OVERLAY_REGISTRY_URI": f"sqlite:///{registry[1] / 'mlflow.db'}",
           "OVERLAY_MODELS_URL": models.url, "OVERLAY_MODELS_PORT": str(models_port),
           "OVERLAY_SHADOW": "mesh", "OVERLAY_HOME": str(tmp_path / "home")}
    env.pop("OVERLAY_TELEMETRY_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "overlay_sdk.cli", "gateway", "--port", str(port),
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(process.communicate()[1][-3000:])
        try:
            return http("GET", f"{url}/readyz")[0] == 200
        except aiohttp.ClientError:
            return False

    try:
        wait_for("the gateway's /readyz", ready, timeout=30)
        status, _, body = http("POST", f"{url}/_overlay/remote/invoke",
                                     {"inputs": {"amount": 3.0}})
        assert status == 200 and body["outputs"] == ["scorer:2 says yes"], body
        assert models.calls()[-1].version == "scorer:2"
        status, _, body = http("POST", f"http://127.0.0.1:{models_port}/invocations",
                               {"inputs": {"amount": 3.0}}, {VERSION_HEADER: "scorer:2"})
        assert status == 421, body  # the models port is open, and knows scorer:2 is meshed
        status, _, body = http("POST", f"{url}/_overlay/{NAME}/invoke", {"inputs": {"a": 1}})
        assert status == 404, body  # another overlay of the namespace: not served here
    finally:
        err = terminate(process)
    assert process.returncode == 0, err[-3000:]
    assert f"for overlay 'remote' of k8s:///{NS}" in err
    assert "shadow copies by the mesh" in err


def test_overlay_gateway_help_names_the_cluster_options() -> None:
    result = CliRunner().invoke(cli, ["gateway", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for part in ("--store", "OVERLAY_STORE", "--overlay", "OVERLAY_NAME", "--shadow",
                 "[gateway|mesh]", "Istio mirrors", "--models-url", "x-overlay-version",
                 "--models-port", "-shadow", "/readyz", "/healthz"):
        assert part in text, part


@pytest.mark.parametrize(("env", "args", "named"), [
    ({"OVERLAY_STORE": "postgresql://db/overlays"}, [], ["--store", "OVERLAY_STORE",
                                                         "k8s://CONTEXT/NAMESPACE"]),
    ({"OVERLAY_STORE": "k8s://ctx"}, [], ["--store", "OVERLAY_STORE", "namespace"]),
    ({"OVERLAY_STORE": "k8s:///team-a"}, ["--registry-uri", "sqlite:///x.db"],
     ["--store", "OVERLAY_STORE", "kubeconfig"]),
    ({"OVERLAY_STORE": "k8s:///team-a", "KUBECONFIG": "KUBE"}, [],
     ["--registry-uri", "OVERLAY_REGISTRY_URI"]),
    ({"OVERLAY_SHADOW": "mesh"}, [], ["--models-url", "OVERLAY_MODELS_URL"]),
    ({"OVERLAY_MODELS_URL": "http://m:8080"}, [], ["--models-url", "--shadow mesh"]),
    ({"OVERLAY_NAME": "Not_A_Name"}, [], ["--overlay", "OVERLAY_NAME"]),
    ({"OVERLAY_SHADOW": "istio"}, [], ["--shadow", "istio"]),
])
def test_overlay_gateway_errors_name_the_option(env: dict[str, str], args: list[str],
                                                named: list[str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OVERLAY_STORE", "OVERLAY_NAME", "OVERLAY_SHADOW", "OVERLAY_MODELS_URL",
                 "OVERLAY_MODELS_PORT", "OVERLAY_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    kubeconfig = tmp_path / "kubeconfig"  # a context that is never called
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    env = {"KUBECONFIG": str(tmp_path / "absent"), **env}
    if env["KUBECONFIG"] == "KUBE":
        env["KUBECONFIG"] = str(kubeconfig)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), *args, "gateway", "--port", "0"],
                                env=env)
    assert result.exit_code == 2, result.output
    for part in named:
        assert part in result.output, (part, result.output)


def test_a_cluster_store_without_the_k8s_extra_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "overlay_sdk.store.kubernetes", None)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "--registry-uri",
                                      "sqlite:///x.db", "gateway"],
                                env={"OVERLAY_STORE": "k8s:///team-a"})
    assert result.exit_code == 5, result.output
    assert "pip install 'overlay-sdk[k8s]'" in result.output
    assert "--store (OVERLAY_STORE)" in result.output
