"""The SDK as a notebook uses it: connect, create, change traffic, history, rollback."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

import overlay_sdk as ov
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ConflictError, NotFoundError, ValidationError
from overlay_sdk.home import find_home

from .conftest import dump_sqlite

HOST = "http://127.0.0.1:8001"


def create(cp: ControlPlane, **kw: object) -> ov.Overlay:
    args: dict[str, object] = {"host": HOST, "routes": {"fraud:1": 90, "fraud:2": 10}}
    args.update(kw)
    return cp.overlays.create("scoring", **args)  # type: ignore[arg-type]


def test_public_names_are_exported() -> None:
    assert sorted(ov.__all__) == ov.__all__
    for name in ov.__all__:
        assert hasattr(ov, name), name
    assert {n for n in dir(ov) if not n.startswith("_")} == set(ov.__all__) - {"__version__"}
    with pytest.raises(AttributeError, match="no attribute 'start_gateway'"):
        ov.start_gateway  # noqa: B018  (arrives with the gateway, not before)
    for name in ("connect", "ControlPlane", "Overlay", "ModelVersion", "ValidationError",
                 "NotFoundError", "ConflictError", "BackendError", "OverlayError"):
        assert name in ov.__all__
    assert issubclass(ov.ValidationError, ov.OverlayError)


def test_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = tmp_path / "project" / "notebooks" / "deep"
    nested.mkdir(parents=True)
    (tmp_path / "project" / ".overlay").mkdir()
    assert find_home(nested, environ={}) == tmp_path / "project" / ".overlay"
    assert find_home(tmp_path, environ={}) == tmp_path / ".overlay"  # would be created here
    assert find_home(nested, environ={"OVERLAY_HOME": str(tmp_path / "x")}) == tmp_path / "x"


def test_connect_uses_overlay_home_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "home"))
    with ov.connect() as cp:
        assert cp.home == tmp_path / "home"
        assert (tmp_path / "home" / "overlays.db").exists()
        assert len(cp.overlays) == 0


def test_connect_refuses_unknown_address_scheme() -> None:
    with pytest.raises(ValidationError, match="scheme 'http'") as info:
        ov.connect("http://ctx/ns")
    assert info.value.paths == ["home"] and "k8s://CONTEXT/NAMESPACE" in str(info.value)


def test_connect_to_a_cluster_checks_the_address_and_needs_a_registry() -> None:
    with pytest.raises(ValidationError) as info:
        ov.connect("k8s://ctx/team-a")
    assert info.value.paths == ["registry_uri"]
    with pytest.raises(ValidationError) as info:
        ov.connect("k8s://ctx/Team_A", registry_uri="http://mlflow:5000")
    assert info.value.paths == ["url.namespace"]


def test_connect_to_a_cluster(
    registry_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same notebook code on the emulated cluster: overlays are AIOverlay resources."""
    from overlay_sdk.store.kubernetes import KubernetesStore
    from tests.kmock_support import ClusterThread

    with ClusterThread(namespaces=("team-a",)) as cluster:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "dev",
            "clusters": [{"name": "emu", "cluster": {"server": cluster.url}}],
            "users": [{"name": "ada", "user": {"token": "t"}}],
            "contexts": [{"name": "dev", "context": {"cluster": "emu", "user": "ada"}}],
        }))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "home"))
        registry = f"sqlite:///{registry_home / 'mlflow.db'}"
        with ov.connect("k8s:///team-a", registry_uri=registry, author="ada") as cp:
            assert isinstance(cp.store, KubernetesStore) and cp.home == tmp_path / "home"
            o = create(cp)
            o.set_traffic({"fraud:1": 50, "fraud:2": 50})
            o.rollback()
            assert [r.revision for r in cp.store.history("scoring")] == [1, 2, 3]
            assert cp.overlays.get("scoring").spec.weights() == {"fraud:1": 90, "fraud:2": 10}
            stored = cluster.server.objects["overlays.aioverlay.dev/v1alpha1/aioverlays",
                                            "team-a", "scoring"]
            assert stored["metadata"]["annotations"]["overlays.aioverlay.dev/revision"] == "3"


def test_create_then_read_back(cp: ControlPlane) -> None:
    o = create(cp, sticky={"header": "x-user-id"})
    assert (o.name, o.revision) == ("scoring", 1)
    assert o.spec.weights() == {"fraud:1": 90, "fraud:2": 10}
    assert o.spec.sticky is not None and o.spec.sticky.header == "x-user-id"
    again = cp.overlays.get("scoring")
    assert again.spec == o.spec and again.revision == 1
    assert "scoring" in cp.overlays and len(cp.overlays) == 1
    assert [x.name for x in cp.overlays] == ["scoring"]
    table = cp.overlays.list()
    assert isinstance(table, pd.DataFrame)
    assert table.loc[0, "routes"] == "fraud:1=90, fraud:2=10"
    assert o.info.author == "tester"


def test_create_twice_is_a_conflict(cp: ControlPlane) -> None:
    create(cp)
    with pytest.raises(ConflictError, match="already exists"):
        create(cp)


def test_unknown_model_version_is_refused_and_nothing_is_stored(cp: ControlPlane) -> None:
    with pytest.raises(ValidationError) as info:
        create(cp, routes={"fraud:1": 50, "fraud:99": 50})
    assert info.value.paths == ["spec.routes[1]"]
    assert "99" in str(info.value)
    with pytest.raises(ValidationError) as info:
        create(cp, routes={"nosuchmodel:1": 100})
    assert info.value.paths == ["spec.routes[0]"]
    assert cp.overlays.names() == []
    with pytest.raises(NotFoundError, match="none exist yet"):
        cp.overlays.get("scoring")


def test_rejected_changes_leave_stored_state_exactly_as_it_was(cp: ControlPlane) -> None:
    o = create(cp)
    db = cp.home / "overlays.db"
    before = dump_sqlite(db)
    attempts = [
        lambda: o.set_traffic({"fraud:1": 90, "fraud:2": 5}),      # sum 95
        lambda: o.set_traffic({"fraud:1": 50, "fraud:7": 50}),     # unknown version
        lambda: o.canary("fraud:3", percent=100),                  # bad percent
        lambda: o.shadow("fraud:1"),                               # shadow is a route
        lambda: o.update(mode="shadow"),                           # needs match
        lambda: o.update(slo={"timeoutMs": -1}),
        lambda: cp.overlays.apply({"metadata": {"name": "scoring"}, "spec": {"host": HOST}}),
    ]
    for attempt in attempts:
        with pytest.raises(ValidationError):
            attempt()
    assert dump_sqlite(db) == before
    assert o.refresh().revision == 1


def test_traffic_changes_each_write_one_revision(cp: ControlPlane) -> None:
    o = create(cp)
    o.set_traffic({"fraud:1": 95, "fraud:2": 5})
    assert (o.revision, o.spec.weights()) == (2, {"fraud:1": 95, "fraud:2": 5})
    o.shadow("fraud:3", percent=50)
    assert o.spec.shadow is not None and (o.spec.shadow.version, o.spec.shadow.percent) == ("3", 50)
    o.canary("fraud:3", percent=1)
    assert o.spec.weights() == {"fraud:1": 94, "fraud:2": 5, "fraud:3": 1}
    assert o.spec.shadow is None
    o.promote("fraud:3")
    assert (o.revision, o.spec.weights()) == (5, {"fraud:3": 100})
    history = o.history()
    assert list(history.index) == [1, 2, 3, 4, 5]
    assert list(history["message"]) == [
        "create", "set traffic fraud:1=95, fraud:2=5", "shadow fraud:3 at 50%",
        "canary fraud:3 at 1%", "promote fraud:3",
    ]
    assert history.loc[2, "changes"] == "routes fraud:1 90->95, fraud:2 10->5"
    assert str(history["created_at"].dt.tz) == "UTC"


def test_stale_handle_gets_conflict_and_refresh_recovers(cp: ControlPlane) -> None:
    first = create(cp)
    second = cp.overlays.get("scoring")
    second.set_traffic({"fraud:1": 80, "fraud:2": 20})
    with pytest.raises(ConflictError, match=r"refresh\(\)") as info:
        first.set_traffic({"fraud:1": 70, "fraud:2": 30})
    assert (info.value.expected, info.value.current) == (1, 2)
    first.refresh().set_traffic({"fraud:1": 70, "fraud:2": 30})
    assert first.revision == 3


def test_rollback_reapplies_an_earlier_revision_as_new(cp: ControlPlane) -> None:
    o = create(cp)
    o.shadow("fraud:3")
    o.canary("fraud:3", percent=1)
    o.rollback()
    assert o.revision == 4
    assert o.spec == cp.store.revision("scoring", 2).overlay.spec  # type: ignore[union-attr]
    o.rollback(to=1)
    assert o.revision == 5 and o.spec.weights() == {"fraud:1": 90, "fraud:2": 10}
    assert o.history().loc[5, "message"] == "rollback to revision 1"
    assert len(cp.store.history("scoring")) == 5  # nothing rewritten
    with pytest.raises(NotFoundError, match="no revision 42"):
        o.rollback(to=42)


def test_rollback_with_nothing_earlier(cp: ControlPlane) -> None:
    o = create(cp)
    with pytest.raises(NotFoundError, match="nothing to roll back to"):
        o.rollback()


def test_alias_routes_resolve_to_versions(cp: ControlPlane, registry_home: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{registry_home / 'mlflow.db'}")
    client.set_registered_model_alias("fraud", "champion", "2")
    o = cp.overlays.create("aliased", host=HOST, routes={"fraud@champion": 100})
    route = o.spec.routes[0]
    assert (route.alias, route.version) == ("champion", "2")
    with pytest.raises(ValidationError) as info:
        cp.overlays.create("dup", host=HOST, routes={"fraud@champion": 50, "fraud:2": 50})
    assert info.value.paths == ["spec.routes[1]"]
    with pytest.raises(ValidationError) as info:
        cp.overlays.create("nope", host=HOST, routes={"fraud@nosuch": 100})
    assert info.value.paths == ["spec.routes[0]"]


def test_update_other_fields(cp: ControlPlane) -> None:
    o = create(cp)
    o.update(mode="shadow", match={"method": "POST", "path": "/api/score"}, slo={"timeoutMs": 500})
    assert o.spec.mode == "shadow" and o.spec.slo is not None and o.spec.slo.timeout_ms == 500
    assert "mode passthrough -> shadow" in o.info.changes
    o.update(mode="passthrough", match=None)
    assert o.spec.match is None


def test_apply_yaml_document_creates_or_updates(cp: ControlPlane) -> None:
    text = f"""
apiVersion: overlays.aioverlay.dev/v1alpha1
kind: AIOverlay
metadata: {{name: from-yaml}}
spec:
  host: {{url: "{HOST}"}}
  routes: [{{model: fraud, version: 1, weight: 100}}]
"""
    assert cp.overlays.apply(text).revision == 1
    assert cp.overlays.apply(text.replace("version: 1", "version: 2")).revision == 2
    assert cp.overlays.get("from-yaml").to_yaml().startswith("apiVersion: overlays.aioverlay.dev")


def test_delete_keeps_history(cp: ControlPlane) -> None:
    create(cp)
    cp.overlays.delete("scoring")
    assert "scoring" not in cp.overlays
    with pytest.raises(NotFoundError):
        cp.overlays.delete("scoring")
    cp.overlays.delete("scoring", missing_ok=True)
    assert [r.action for r in cp.store.history("scoring")] == ["apply", "delete"]
    assert create(cp).revision == 3  # numbering continues


def test_reprs_show_state(cp: ControlPlane) -> None:
    o = create(cp)
    assert "revision=1" in repr(o) and "fraud:1=90" in repr(o)
    assert "<table>" in o._repr_html_()
    assert "scoring" in cp.overlays._repr_html_()


def test_wrong_types_are_validation_errors_and_store_nothing(cp: ControlPlane) -> None:
    o = create(cp)
    db = cp.home / "overlays.db"
    before = dump_sqlite(db)
    bad = [
        (lambda: cp.overlays.create("x", host=123, routes={"fraud:1": 100}), "spec.host"),  # type: ignore[arg-type]
        (lambda: cp.overlays.create("x", host=HOST, routes=5), "spec.routes"),  # type: ignore[arg-type]
        (lambda: cp.overlays.create("x", host=HOST, routes={"fraud:1": 100}, labels=5),  # type: ignore[arg-type]
         "metadata.labels"),
        (lambda: cp.overlays.create("Bad Name", host=HOST, routes={"fraud:1": 100}),
         "metadata.name"),
        (lambda: o.set_traffic("abc"), "weights"),  # type: ignore[arg-type]
        (lambda: o.canary(None), "ref"),  # type: ignore[arg-type]
        (lambda: o.shadow("fraud:3", "abc"), "percent"),  # type: ignore[arg-type]
        (lambda: o.shadow("fraud:3", True), "percent"),  # type: ignore[arg-type]
        (lambda: o.rollback(to=True), "to"),
        (lambda: o.rollback(to="1"), "to"),  # type: ignore[arg-type]
        (lambda: o.promote("fraud"), "ref"),
        (lambda: o.set_traffic({"fraud:1": 100}, message=5), "message"),  # type: ignore[arg-type]
    ]
    for call, path in bad:
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.paths[0] == path, info.value
    assert dump_sqlite(db) == before


def test_connect_checks_its_arguments(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    for kwargs, path in [({"home": 123}, "home"), ({"home": afile}, "home"),
                         ({"home": tmp_path, "registry_uri": 5}, "registry_uri"),
                         ({"home": tmp_path, "author": ""}, "author")]:
        with pytest.raises(ValidationError) as info:
            ov.connect(**kwargs)  # type: ignore[arg-type]
        assert info.value.paths == [path]


def test_a_tracking_server_keeps_its_own_artifact_store(tmp_path: Path) -> None:
    with ov.connect(tmp_path, registry_uri="http://mlflow.internal:5000") as cp:
        assert cp.models.tracking_uri == "http://mlflow.internal:5000"
        assert cp.models.artifact_location is None
    with ov.connect(tmp_path) as cp:
        assert cp.models.artifact_location == (tmp_path / "mlartifacts").as_uri()


def test_numpy_integers_are_accepted_as_weights(cp: ControlPlane) -> None:
    import numpy as np

    o = create(cp, routes={"fraud:1": np.int64(70), "fraud:2": np.int32(30)})
    assert o.spec.weights() == {"fraud:1": 70, "fraud:2": 30}
    o.set_traffic({"fraud:1": np.int64(95), "fraud:2": np.int64(5)})
    o.canary("fraud:3", percent=np.int64(2))
    assert o.spec.weights()["fraud:3"] == 2


def test_status_is_never_taken_from_callers(cp: ControlPlane) -> None:
    doc = {"metadata": {"name": "s"}, "spec": {"host": {"url": HOST},
           "routes": [{"model": "fraud", "version": "1", "weight": 100}]},
           "status": {"revision": 99}}
    o = cp.overlays.apply(doc)
    assert o.overlay.status is None
    assert cp.store.get("s").overlay.status is None  # type: ignore[union-attr]


def test_a_change_to_one_route_does_not_move_an_alias_route(
    cp: ControlPlane, registry_home: Path
) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{registry_home / 'mlflow.db'}")
    client.set_registered_model_alias("fraud", "challenger", "3")
    o = cp.overlays.create("pinned", host=HOST, routes={"fraud@challenger": 50, "fraud:1": 50})
    client.set_registered_model_alias("fraud", "challenger", "2")
    try:
        o.set_traffic({"fraud@challenger": 40, "fraud:1": 60})  # names the alias: re-resolved
        assert o.spec.routes[0].version == "2"
        client.set_registered_model_alias("fraud", "challenger", "3")
        o.canary("fraud:1", percent=10)  # does not name the alias: it keeps version 2
        assert (o.spec.routes[0].alias, o.spec.routes[0].version) == ("challenger", "2")
        assert "fraud:3" not in o.info.changes
    finally:
        client.delete_registered_model_alias("fraud", "challenger")


def test_naming_an_alias_in_canary_or_promote_re_resolves_it(
    cp: ControlPlane, registry_home: Path
) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{registry_home / 'mlflow.db'}")
    client.set_registered_model_alias("fraud", "champ", "1")
    try:
        o = cp.overlays.create("champ", host=HOST, routes={"fraud@champ": 60, "fraud:2": 40})
        client.set_registered_model_alias("fraud", "champ", "3")
        o.canary("fraud@champ", percent=20)
        assert (o.spec.routes[0].alias, o.spec.routes[0].version, o.spec.routes[0].weight) == (
            "champ", "3", 20)
        client.set_registered_model_alias("fraud", "champ", "1")
        o.promote("fraud@champ")
        assert [(r.alias, r.version, r.weight) for r in o.spec.routes] == [("champ", "1", 100)]
    finally:
        client.delete_registered_model_alias("fraud", "champ")


def test_odd_inputs_are_still_validation_errors(cp: ControlPlane, tmp_path: Path) -> None:
    import numpy as np

    o = create(cp)
    cases = [
        (lambda: o.shadow("fraud:3", percent=10**400), "percent"),
        (lambda: cp.overlays.apply("[" * 5000 + "]" * 5000), "(document)"),
        (lambda: cp.overlays.apply("metadata: {name: a}\nmetadata: {name: b}\n"), "(document)"),
        (lambda: ov.connect(""), "home"),
        (lambda: ov.connect("/proc/no-such/home"), "home"),
        (lambda: cp.store.watch(since="x"), "since"),  # type: ignore[arg-type]
        (lambda: cp.store.watch(timeout="x"), "timeout"),  # type: ignore[arg-type]
        (lambda: cp.store.revision("scoring", 2**70), "number"),
        (lambda: ov.AIOverlay.model_validate({}), "metadata"),
    ]
    for call, path in cases:
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.paths[0] == path, info.value
    o.set_traffic({"fraud:1": 50, "fraud:2": 50})
    assert o.rollback(to=np.int64(1)).spec.weights() == {"fraud:1": 90, "fraud:2": 10}
    listed = cp.overlays.create("listed", host=HOST, routes=[
        {"model": "fraud", "version": "1", "weight": np.int64(100)}])
    assert listed.spec.routes[0].weight == 100


def test_a_change_that_changes_nothing_writes_no_revision(cp: ControlPlane) -> None:
    o = create(cp)
    doc = o.overlay.to_dict()
    assert cp.overlays.apply(doc).revision == 1
    assert o.set_traffic({"fraud:1": 90, "fraud:2": 10}).revision == 1
    assert len(cp.store.history("scoring")) == 1


def test_moving_an_alias_writes_a_revision_of_each_overlay_naming_it(cp: ControlPlane) -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    now = [t0]
    cp.models.clock = lambda: now[0]
    cp.models.set_alias("fraud", "live", "1")
    a = cp.overlays.create("uses-live", host=HOST, routes={"fraud@live": 100})
    b = cp.overlays.create("shadows-live", host=HOST, routes={"fraud@live": 100},
                           mode="shadow", match={"path": "/api/score"})
    other = cp.overlays.create("pinned-only", host=HOST, routes={"fraud:1": 100})

    now[0] = t0 + timedelta(hours=26)
    cp.models.set_alias("fraud", "live", "2", reason="retrained")
    now[0] = t0 + timedelta(hours=44)
    cp.models.set_alias("fraud", "live", "3")
    for o in (a, b, other):
        o.refresh()
    assert (a.revision, a.spec.routes[0].version) == (3, "3")
    assert (b.revision, b.spec.routes[0].version) == (3, "3")
    assert other.revision == 1  # does not name the alias
    message = a.history().loc[2, "message"]
    assert message.startswith("alias fraud@live: 1 -> 2 at 2025-03-02T11:00:00")
    assert message.endswith("(retrained)")

    # "yesterday" = 24 h before now: v2 was serving then; both overlays follow, one revision each
    now[0] = t0 + timedelta(hours=51)
    moved = cp.models.rollback("fraud", to="yesterday", alias="live")
    assert moved.version == "2"
    assert cp.models.serving_at("fraud", t0 + timedelta(hours=27), alias="live").version == "2"
    for o in (a, b):
        o.refresh()
        assert o.revision == 4
    assert a.spec.routes[0].version == "2" and b.spec.routes[0].version == "2"
    assert other.refresh().revision == 1


def test_an_alias_move_an_overlay_could_not_follow_is_refused_before_it_is_made(
    cp: ControlPlane,
) -> None:
    cp.models.set_alias("fraud", "cand", "3")
    clash = cp.overlays.create("clash", host=HOST, routes={"fraud:2": 100}, shadow="fraud@cand")
    follows = cp.overlays.create("follows", host=HOST, routes={"fraud@cand": 100})
    history = cp.models.alias_history("fraud", alias="cand")
    with pytest.raises(ConflictError, match="'clash' could not follow") as info:
        cp.models.set_alias("fraud", "cand", "2")  # would shadow the version clash routes to
    assert "also a primary route" in str(info.value)
    with pytest.raises(ConflictError, match="'clash' routes to it"):
        cp.models.delete_alias("fraud", "cand")
    assert cp.models.get_version_by_alias("fraud", "cand").version == "3"  # nothing moved
    assert cp.models.alias_history("fraud", alias="cand").equals(history)
    assert (clash.refresh().revision, follows.refresh().revision) == (1, 1)
    cp.overlays.delete("clash")
    cp.models.set_alias("fraud", "cand", "2")
    assert follows.refresh().spec.routes[0].version == "2"


def test_a_failing_follower_does_not_stop_the_others(cp: ControlPlane) -> None:
    from unittest import mock

    cp.models.set_alias("fraud", "many", "1")
    first = cp.overlays.create("first", host=HOST, routes={"fraud@many": 100})
    second = cp.overlays.create("second", host=HOST, routes={"fraud@many": 100})
    real_write = cp._write

    def flaky(doc, **kw):  # type: ignore[no-untyped-def]
        if doc["metadata"]["name"] == "first":
            raise ov.BackendError("store at /x failed: disk I/O error")
        return real_write(doc, **kw)

    with mock.patch.object(cp, "_write", side_effect=flaky), \
            pytest.raises(ov.BackendError, match="'first' kept revision 1"):
        cp.models.set_alias("fraud", "many", "2")
    assert second.refresh().spec.routes[0].version == "2"
    assert first.refresh().revision == 1


def test_acting_as_records_an_author_per_thread(cp: ControlPlane) -> None:
    """One control plane shared by a server writing for several users (threads)."""
    import threading

    o = cp.overlays.create("shared", host="http://127.0.0.1:8001", routes={"fraud:1": 100})
    barrier = threading.Barrier(2)
    turn = threading.Lock()  # both are acting at once; their writes take turns
    written: dict[str, int] = {}

    def write(user: str, weights: dict[str, int]) -> None:
        with cp.acting_as(user):
            barrier.wait(5)
            with turn:
                written[user] = cp.overlays.get("shared").set_traffic(weights).revision

    threads = [threading.Thread(target=write, args=("ana", {"fraud:1": 90, "fraud:2": 10})),
               threading.Thread(target=write, args=("bob", {"fraud:1": 80, "fraud:2": 20}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    authors = {r.revision: r.author for r in cp.store.history("shared")}
    assert authors[written["ana"]] == "ana" and authors[written["bob"]] == "bob"
    assert authors[o.revision] == cp.author == "tester"  # outside the block: the plane's own
    with pytest.raises(ValidationError, match="author"), cp.acting_as("  "):
        pass
