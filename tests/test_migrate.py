"""``overlay migrate`` and ``cp.migrate``: every overlay with its whole history, from the
embedded store onto a cluster (kmock's emulated API server) and back; idempotent, never
rewriting a target's history; model versions checked against the target registry.
Also ``overlay diff -f``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from overlay_sdk.cli import cli
from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.errors import ConflictError, ValidationError
from overlay_sdk.migrate import plan_copy, registry_steps
from overlay_sdk.spec import parse_overlay
from overlay_sdk.store import LocalStore, Revision
from overlay_sdk.store.kubernetes import KubernetesStore
from tests.kmock_support import ClusterThread

from .conftest import _fit

NS = "team-a"


def doc(name: str, weights: tuple[int, int] = (90, 10)) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"team": "risk"}},
            "spec": {"host": {"url": "http://127.0.0.1:8001"},
                     "routes": [{"model": "fraud", "version": "1", "weight": weights[0]},
                                {"model": "fraud", "version": "2", "weight": weights[1]}]}}


# -- the pure plan ----------------------------------------------------------------------------


def _revs(n: int, name: str = "o") -> list[Revision]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [Revision(name, i, "apply", parse_overlay(doc(name, (100 - i, i))), "ana",
                     t0 + timedelta(hours=i), f"m{i}", "") for i in range(1, n + 1)]


def test_plan_copy_skips_what_the_target_holds_and_refuses_other_histories() -> None:
    source = _revs(4)
    assert plan_copy(source, []) == 0
    assert plan_copy(source, source[:3]) == 3
    assert plan_copy(source, source) == 4
    with pytest.raises(ConflictError, match="revision 2 differs"):
        plan_copy(source, [source[0], dataclasses.replace(source[1], author="bob")])
    with pytest.raises(ConflictError, match=r"5 revision.* in the target but 4"):
        plan_copy(source, _revs(5))


def test_registry_steps_name_the_export_tools_and_the_check() -> None:
    text = registry_steps("sqlite:////h/mlflow.db", "http://mlflow:5000")
    assert "export-models" in text and "import-models" in text
    assert "MLFLOW_TRACKING_URI=sqlite:////h/mlflow.db" in text
    assert "--target-registry http://mlflow:5000" in text
    local = registry_steps("sqlite:////h/mlflow.db", None, cluster=False)
    assert "registry_uri=sqlite:////h/mlflow.db" in local and "k8s://" not in local


# -- onto the emulated cluster ------------------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[ClusterThread]:
    with ClusterThread(namespaces=("default", NS)) as running:
        yield running


@pytest.fixture
def kubeconfig(cluster: ClusterThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "emu",
              "clusters": [{"name": "emu", "cluster": {"server": cluster.url}}],
              "users": [{"name": "ada", "user": {"token": "t"}}],
              "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "ada"}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def embedded(registry_home: Path, tmp_path: Path) -> Iterator[ControlPlane]:
    """An embedded control plane with a history worth copying: updates, a rollback, a
    deletion and re-creation, an overlay deleted for good, another never touched again."""
    with connect(tmp_path / "home", registry_uri=f"sqlite:///{registry_home / 'mlflow.db'}",
                 author="ana") as cp:
        scoring = cp.overlays.apply(doc("scoring"), message="first")
        scoring.set_traffic({"fraud:1": 50, "fraud:2": 50}, message="half")
        scoring.set_traffic({"fraud:1": 100}, message="all on 1")
        scoring.rollback(to=2, message="back to half")
        cp.overlays.delete("scoring", message="retire")
        cp.overlays.apply(doc("scoring", (80, 20)), message="again")
        cp.overlays.apply(doc("gone"), message="short-lived")
        cp.overlays.delete("gone")
        cp.overlays.apply(doc("quiet"))
        yield cp


def _histories(store: Any) -> dict[str, list[Revision]]:
    return {name: store.history(name) for name in store.names()}


def _cli(home: Path, registry: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "--registry-uri", registry, *args],
                              catch_exceptions=False)


def test_migrate_onto_a_cluster_preserves_every_overlay_and_its_full_history(
    embedded: ControlPlane, registry_home: Path, kubeconfig: Path, cluster: ClusterThread
) -> None:
    registry = f"sqlite:///{registry_home / 'mlflow.db'}"
    source = _histories(embedded.store)
    assert [len(h) for h in source.values()] == [2, 1, 6]  # gone, quiet, scoring

    dry = _cli(embedded.home, registry, "migrate", "--to", f"k8s://emu/{NS}", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would copy 9 revision(s) of 3 overlay(s) (2 live)" in dry.output
    with KubernetesStore(NS, cluster.api_client()) as target:
        assert target.names() == []  # a dry run writes nothing

    result = _cli(embedded.home, registry, "migrate", "--to", f"k8s://emu/{NS}")
    assert result.exit_code == 0, result.output
    assert "copied 9 revision(s) of 3 overlay(s) (2 live)" in result.output
    assert "export-models" in result.output  # how to move the registry, since not checked
    with KubernetesStore(NS, cluster.api_client()) as target:
        assert _histories(target) == source  # numbers, authors, times, messages, tombstones
        assert target.list() == embedded.store.list()
        # the cluster continues the history where the embedded store left it
        nxt = target.apply(parse_overlay(doc("scoring", (70, 30))), expected_revision=6)
        assert nxt.revision == 7

    again = _cli(embedded.home, registry, "migrate", "--to", f"k8s://emu/{NS}", "-o", "json")
    assert again.exit_code == 4  # scoring now differs in the target: refused, not rewritten
    assert "copied 0 revision(s)" in again.output
    assert "scoring: not copied" in again.output and "7 revision(s) in the target" in again.output
    with KubernetesStore(NS, cluster.api_client()) as target:
        assert len(target.history("scoring")) == 7


def test_an_interrupted_migration_continues_and_only_named_overlays_move(
    embedded: ControlPlane, kubeconfig: Path, cluster: ClusterThread
) -> None:
    url = f"k8s://emu/{NS}"
    with KubernetesStore(NS, cluster.api_client()) as target:
        for rev in embedded.store.history("scoring")[:3]:  # a run that stopped after 3
            target.import_revision(rev)
    report = embedded.migrate(url, names=["scoring"])
    assert [(o.name, o.present, o.copied) for o in report.overlays] == [("scoring", 3, 3)]
    assert "export-models" in report.notes
    with KubernetesStore(NS, cluster.api_client()) as target:
        assert target.names() == ["scoring"]
        assert target.history("scoring") == embedded.store.history("scoring")
    assert embedded.migrate(url).copied == 3  # the other two overlays
    assert embedded.migrate(url).copied == 0
    with pytest.raises(ValidationError, match="is this control plane itself"):
        embedded.migrate(embedded.home)
    with pytest.raises(Exception, match="'nope' has no history"):
        embedded.migrate(url, names=["nope"])


def test_migrate_back_from_the_cluster_into_a_new_home(
    embedded: ControlPlane, registry_home: Path, kubeconfig: Path, tmp_path: Path
) -> None:
    embedded.migrate(f"k8s://emu/{NS}")
    registry = f"sqlite:///{registry_home / 'mlflow.db'}"
    with connect(f"k8s://emu/{NS}", registry_uri=registry) as cluster_cp:
        report = cluster_cp.migrate(tmp_path / "backup")
    assert report.copied == 9 and not report.failed
    with LocalStore(tmp_path / "backup" / "overlays.db") as backup:
        assert _histories(backup) == _histories(embedded.store)


def test_model_versions_are_checked_against_the_target_registry_first(
    embedded: ControlPlane, registry_home: Path, kubeconfig: Path, cluster: ClusterThread,
    tmp_path: Path,
) -> None:
    target_registry = f"sqlite:///{tmp_path / 'target-mlflow.db'}"
    with connect(tmp_path / "target-home", registry_uri=target_registry) as other:
        other.models.register("fraud", model=_fit(1.0), label="C=1.0")  # fraud:1 only
    result = _cli(embedded.home, f"sqlite:///{registry_home / 'mlflow.db'}", "migrate",
                  "--to", f"k8s://emu/{NS}", "--target-registry", target_registry)
    assert result.exit_code == 2, result.output
    assert "not in the target registry" in result.output
    assert "scoring uses fraud:2" in result.output and "fraud:1 " not in result.output
    with KubernetesStore(NS, cluster.api_client()) as target:
        assert target.names() == []  # nothing copied


# -- overlay diff -f ---------------------------------------------------------------------------


def test_diff_shows_what_apply_would_change(embedded: ControlPlane, registry_home: Path,
                                            tmp_path: Path) -> None:
    registry = f"sqlite:///{registry_home / 'mlflow.db'}"
    path = tmp_path / "o.yaml"
    live = embedded.overlays.get("scoring").overlay.to_dict()
    path.write_text(yaml.safe_dump(live))
    same = _cli(embedded.home, registry, "diff", "-f", str(path))
    assert same.exit_code == 0, same.output
    assert "aioverlay/scoring: unchanged (revision 6)" in same.output

    changed = doc("scoring", (60, 40))
    path.write_text(yaml.safe_dump_all([changed, doc("fresh")]))
    result = _cli(embedded.home, registry, "diff", "-f", str(path), "--manifests", "-n", NS)
    assert result.exit_code == 1, result.output
    out = result.output
    assert "aioverlay/scoring: revision 6 -> 7: routes fraud:1 80->60, fraud:2 20->40" in out
    assert "--- live/aioverlay/scoring (revision 6)" in out and "+++ document 1 of" in out
    assert "-    weight: 80" in out and "+    weight: 60" in out
    assert "aioverlay/fresh: would be created (document 2 of" in out
    assert "+  name: fresh" in out
    assert "manifests" in out and "+      weight: 60" in out  # the VirtualService route
    assert embedded.overlays.get("scoring").revision == 6  # nothing written
    assert "fresh" not in embedded.overlays
    bad = changed | {"spec": {**changed["spec"], "routes": changed["spec"]["routes"][:1]}}
    path.write_text(yaml.safe_dump(bad))
    refused = _cli(embedded.home, registry, "diff", "-f", str(path))
    assert refused.exit_code == 2 and "spec.routes" in refused.output


def test_render_of_an_alias_without_resolve_says_to_resolve(tmp_path: Path) -> None:
    aliased = doc("aliased")
    aliased["spec"]["routes"] = [{"model": "fraud", "alias": "champion", "weight": 100}]
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(aliased))
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "render", "-f", str(path)])
    assert result.exit_code == 2
    assert f"document 1 of {path}" in result.output and "give --resolve" in result.output
