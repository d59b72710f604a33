"""1,000 overlays reconciled by the operator on an emulated API server (target: <= 30 s).

The cluster is kmock's emulator as the tests run it (``tests/kmock_support.py`` with what
kopf needs, ``tests/k8s/test_operator.py``), in its own process as an API server is (in the
operator's process it would share one interpreter lock with it), with one change for scale:
a request for one object finds it by key (kmock 0.8 scans every stored object, which made the
8,000th object cost 3 ms a request: that would measure the emulator, not the operator). The
operator runs as ``overlay operator run`` does (kopf, one namespace, logged in from a
kubeconfig), with the versions resolved by an in-memory registry: copilot:3 an MLflow model
(a model server), copilot:4 a provider; each overlay has seven children.

- baseline: the seven children of each overlay created through the official client, one
  request each, one after another (the API calls alone, nothing decided);
- start: the operator starts with 1,000 overlays stored (after a restart, or a migration)
  and reconciles every one: finalizer, render, seven server-side applies, status, an Event;
- change: 1,000 weight changes (a new generation each) written while it runs, until every
  ``RoutesApplied`` names the new generation.
Reported as wall time and as ratios to the baseline, measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.kmock_support and the emulator additions

N = 1_000
NS = "bench"
GROUP, VERSION = "overlays.aioverlay.dev", "v1alpha1"
TARGET_S = 30.0


def _server_class() -> type:
    import kmock

    from tests.k8s.test_operator import KopfServer

    class IndexedServer(KopfServer):  # type: ignore[misc]
        """One object per request found by its key, not by scanning them all."""

        def _one(self, request: Any, name: str | None = None,
                 namespace: str | None = None) -> Any:
            key = (request.resource, namespace or request.namespace, name or request.name)
            try:
                return self.objects[key]
            except KeyError:
                return None

        async def _serve_create(self, request: Any) -> Any:
            meta = (request.data or {}).get("metadata") or {}
            found = self._one(request, meta.get("name"), meta.get("namespace"))
            if found is None or found.deleted:
                return await super()._serve_create(request)
            return kmock.Response(status=201, payload=found.raw)

        async def _serve_update(self, request: Any) -> Any:
            found = self._one(request)
            return found.last.raw if found is not None else await super()._serve_update(request)

        async def _serve_fetch(self, request: Any) -> Any:
            found = self._one(request)
            if found is None or found.deleted:
                return await super()._serve_fetch(request)
            return found.raw

    return IndexedServer


def _doc(i: int, weight: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay",
        "metadata": {"name": f"overlay-{i:04d}", "namespace": NS},
        "spec": {"host": {"url": "http://crm.internal:8080"},
                 "routes": [{"model": "copilot", "version": "3", "weight": weight},
                            {"model": "copilot", "version": "4", "weight": 100 - weight}]},
    }


def _applied(cluster: Any, generation: int) -> int:
    """How many overlays have RoutesApplied=True for ``generation`` (in the server)."""
    import kmock

    resource = kmock.resource(f"{GROUP}/{VERSION}/aioverlays")
    done = 0
    for (res, _, _), obj in list(cluster.server.objects.items()):
        if res != resource or obj.deleted:
            continue
        for c in (obj.raw.get("status") or {}).get("conditions") or []:
            if c.get("type") == "RoutesApplied" and c.get("status") == "True" \
                    and c.get("observedGeneration") == generation:
                done += 1
    return done


def _serve() -> None:
    """The emulated cluster, in this process until ``quit``: prints its URL, then answers
    ``applied GENERATION`` and ``requests TOKEN`` (counts) on standard input, one a line."""
    from tests.k8s.test_operator import emulated_cluster

    with emulated_cluster(("default", NS), _server_class()) as cluster:
        print(cluster.url, flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "applied":
                print(_applied(cluster, int(argument)), flush=True)
            elif command == "requests":
                print(sum(1 for r in cluster.requests()
                          if r.headers.get("Authorization") == f"Bearer {argument}"),
                      flush=True)
            else:
                break


class _Cluster:
    """The emulated cluster in a child process (:func:`_serve`)."""

    def __enter__(self) -> _Cluster:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the emulated API server did not start")
        return self

    def ask(self, line: str) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        self.process.wait(30)

    def api_client(self) -> Any:
        from tests.kmock_support import api_client

        return api_client(self.url)


def _wait(cluster: _Cluster, generation: int, limit: float = 300.0) -> float:
    started = time.perf_counter()
    while (done := cluster.ask(f"applied {generation}")) < N:
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"only {done} of {N} overlays reconciled in {limit:.0f} s")
        time.sleep(0.1)
    return time.perf_counter() - started


def _baseline() -> float:
    """Seven children per overlay, created one request at a time, on a fresh emulator."""
    from overlay_sdk.k8s import operator as op
    from overlay_sdk.k8s.manifests import VersionTarget
    from overlay_sdk.k8s.render import render

    versions = {"copilot:4": VersionTarget("copilot:4", "provider")}
    manifests = [render({**_doc(i), "metadata": {**_doc(i)["metadata"], "uid": f"u{i}"}},
                        versions) for i in range(N)]
    with _Cluster() as cluster:
        api = cluster.api_client()
        client = op.Cluster(api)
        started = time.perf_counter()
        for children in manifests:
            for obj in children:
                prefix, plural = op.KINDS[obj["apiVersion"], obj["kind"]]
                client.request("POST", f"{prefix}/namespaces/{NS}/{plural}", body=obj,
                               query=[("fieldManager", "overlay-operator")], doing="create")
        elapsed = time.perf_counter() - started
        api.close()
        return elapsed


def _operator_runs() -> tuple[float, float, int]:
    """(seconds to reconcile N stored overlays from start, seconds for N weight changes,
    API requests the operator made)."""
    from kubernetes import client as k8s

    from overlay_sdk.k8s import operator as op
    from tests.k8s.test_operator import OPERATOR_TOKEN, FakeRegistry, write_kubeconfig

    with _Cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        api = cluster.api_client()
        users = k8s.CustomObjectsApi(api)
        for i in range(N):
            users.create_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", _doc(i))
        config = write_kubeconfig(Path(tmp) / "config", cluster.url, OPERATOR_TOKEN, NS)
        operator = op.Operator(op.OperatorConfig(namespaces=(NS,), kubeconfig=str(config),
                                                 context="kmock"),
                               resolver=FakeRegistry(), model_registry=object())
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(
            operator.serve(stop_flag=stop, ready_flag=ready)), daemon=True)
        started = time.perf_counter()
        thread.start()
        try:
            start_s = time.perf_counter() - started + _wait(cluster, 1)
            changed = time.perf_counter()
            for i in range(N):
                users.patch_namespaced_custom_object(
                    GROUP, VERSION, NS, "aioverlays", f"overlay-{i:04d}",
                    {"spec": {"routes": _doc(i, 90)["spec"]["routes"]}})
            _wait(cluster, 2)
            change_s = time.perf_counter() - changed
        finally:
            stop.set()
            thread.join(30)
            operator.close()
            api.close()
        return start_s, change_s, cluster.ask(f"requests {OPERATOR_TOKEN}")


def main() -> list[str]:
    import logging

    logging.getLogger("kopf").setLevel(logging.ERROR)
    # kopf's watch generators complain when the loop closes under them at the stop
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    baseline = _baseline()
    start_s, change_s, requests = _operator_runs()
    verdict = "meets" if start_s <= TARGET_S else "MISSES"
    return [
        f"baseline: {N} x 7 children created by the client, one request each: {baseline:.1f} s "
        f"({baseline / (7 * N) * 1000:.2f} ms a request)",
        f"operator start with {N} stored overlays -> all RoutesApplied: {start_s:.1f} s "
        f"({start_s / baseline:.2f}x baseline; target <= {TARGET_S:.0f} s: {verdict})",
        f"{N} weight changes while it runs -> all at the new generation: {change_s:.1f} s "
        f"({change_s / baseline:.2f}x baseline)",
        f"operator API requests: {requests} ({requests / N:.1f} per overlay, both rounds)",
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        for line in main():
            print(line)
