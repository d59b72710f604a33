"""ModelRegistry against a real control plane: what it shows, registers from an MLflow run,
and rolls back only after a confirmation (issue 7).

The ``cp`` fixture's registry is shared by the session (model ``fraud`` versions 1..3), so
each test moves an alias of its own and registers under names of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.registry_aliases import DEFAULT_ALIAS
from overlay_sdk.widgets import ModelRegistry
from overlay_sdk.widgets.registry_state import RollbackRequest

HOST = "http://127.0.0.1:9"


def _send(widget: ModelRegistry, content: Any) -> None:
    """What the front end's ``model.send(...)`` does."""
    widget._on_message(widget, content, [])


def _serving(cp: ControlPlane, alias: str) -> str:
    return cp.models.get_version_by_alias("fraud", alias).version


def _moves(cp: ControlPlane, alias: str) -> int:
    return len(cp.models.alias_history("fraud", alias))


@pytest.fixture
def widget(cp: ControlPlane) -> Iterator[ModelRegistry]:
    w = ModelRegistry(cp, model="fraud")
    yield w
    w.close()


def test_it_lists_the_models_and_shows_the_selected_ones_versions(
        widget: ModelRegistry, cp: ControlPlane) -> None:
    row = next(r for r in widget.models if r["name"] == "fraud")
    assert row["versions"] >= 3 and row["latest"] == str(row["versions"])
    assert widget.selected == "fraud" and widget.alias == DEFAULT_ALIAS == "serving"
    assert [v["label"] for v in widget.versions[:3]] == ["C=1.0", "C=0.1", "C=10.0"]
    for v in widget.versions[:3]:
        sdk = cp.models.get("fraud", v["version"])
        assert v["sha256"] == sdk.sha256 and v["short_sha"] == sdk.sha256[:12]
        assert datetime.fromisoformat(v["created_at"]) == sdk.created_at.replace(microsecond=0)
        assert (v["source"], v["flavor"]) == ("sklearn:LogisticRegression", "sklearn")
    assert widget.alias_choices[0] == "serving" and widget.error == {}
    assert not widget.busy and widget.pending == {}
    assert "\n// ModelRegistry" in widget._esm and ".ov-reg" in widget._css


def test_selecting_a_model_and_refresh(widget: ModelRegistry, cp: ControlPlane) -> None:
    cp.models.set_alias("fraud", "widget_badge", "2")  # made elsewhere: seen on refresh
    _send(widget, {"type": "refresh"})
    by_version = {v["version"]: v for v in widget.versions}
    assert "widget_badge" in by_version["2"]["aliases"]
    assert "widget_badge" in widget.alias_choices
    row = next(r for r in widget.models if r["name"] == "fraud")
    assert row["aliases"]["widget_badge"] == "2"
    _send(widget, {"type": "select", "name": "no-such-model"})
    assert widget.error["action"] == "select" and widget.error["field"] == "name"
    assert "no model named 'no-such-model'" in widget.error["message"]
    assert widget.selected == "fraud" and not widget.busy  # the selection stays
    _send(widget, {"type": "select", "name": "fraud"})
    assert widget.error == {}


def test_a_rollback_moves_the_alias_only_when_confirmed(widget: ModelRegistry,
                                                        cp: ControlPlane) -> None:
    cp.models.set_alias("fraud", "widget_rb", "1")
    cp.models.set_alias("fraud", "widget_rb", "3")
    o = cp.overlays.create("follows", host=HOST, routes={"fraud@widget_rb": 100})
    _send(widget, {"type": "refresh"})
    moves = _moves(cp, "widget_rb")

    _send(widget, {"type": "preview", "name": "fraud", "alias": "widget_rb", "to": "previous"})
    assert widget.pending["text"] == "fraud@widget_rb: version 3 -> 1 (label C=1.0)"
    assert widget.error == {} and not widget.busy
    assert _serving(cp, "widget_rb") == "3" and _moves(cp, "widget_rb") == moves  # a dry run

    _send(widget, {"type": "cancel"})
    assert widget.pending == {} and widget.notice.startswith("cancelled: fraud@widget_rb")
    assert _serving(cp, "widget_rb") == "3" and _moves(cp, "widget_rb") == moves

    _send(widget, {"type": "preview", "name": "fraud", "alias": "widget_rb", "to": "previous"})
    _send(widget, {"type": "confirm", **widget.pending})  # the front end sends what it showed
    assert widget.error == {} and widget.pending == {}
    assert _serving(cp, "widget_rb") == "1" and _moves(cp, "widget_rb") == moves + 1
    assert widget.notice == "rolled back fraud@widget_rb: version 3 -> 1"
    last = cp.models.alias_history("fraud", "widget_rb").iloc[-1]
    assert (last["author"], last["reason"]) == ("tester", "rollback to previous (model "
                                                "registry widget)")
    assert "widget_rb" in next(v for v in widget.versions if v["version"] == "1")["aliases"]
    assert cp.overlays.get("follows").spec.routes[0].version == "1"  # the overlay followed
    assert o.refresh().revision == 2

    _send(widget, {"type": "confirm", "name": "fraud", "alias": "widget_rb",
                   "from_version": "3", "to_version": "1"})  # a second click: refused
    assert widget.error["field"] == "confirm" and "preview one first" in widget.error["message"]
    assert _serving(cp, "widget_rb") == "1" and _moves(cp, "widget_rb") == moves + 1

    # to a chosen version, from code
    pending = widget.preview_rollback("fraud", "2", alias="widget_rb")
    assert pending is not None and pending.text == "fraud@widget_rb: version 1 -> 2 (label C=0.1)"
    moved = widget.confirm_rollback()
    assert moved is not None and moved.version == "2" == _serving(cp, "widget_rb")


def test_confirm_without_a_preview_or_for_another_one_changes_nothing(
        widget: ModelRegistry, cp: ControlPlane) -> None:
    cp.models.set_alias("fraud", "widget_nc", "1")
    cp.models.set_alias("fraud", "widget_nc", "2")
    moves = _moves(cp, "widget_nc")
    assert widget.confirm_rollback() is None
    assert widget.error["field"] == "confirm" and widget.error["action"] == "rollback"
    assert widget.cancel_rollback() is None  # nothing pending: nothing to cancel
    pending = widget.preview_rollback("fraud", alias="widget_nc")
    assert pending is not None and pending.to_version == "1"
    _send(widget, {"type": "confirm", **widget.pending, "to_version": "3"})  # not what was shown
    assert "not the one previewed" in widget.error["message"]
    assert widget.pending["to_version"] == "1"  # still pending, as shown
    assert _serving(cp, "widget_nc") == "2" and _moves(cp, "widget_nc") == moves
    assert widget.cancel_rollback() == pending
    assert widget.confirm_rollback() is None and _serving(cp, "widget_nc") == "2"


def test_an_alias_moved_since_the_preview_is_shown_again_not_moved(
        widget: ModelRegistry, cp: ControlPlane) -> None:
    cp.models.set_alias("fraud", "widget_race", "1")
    cp.models.set_alias("fraud", "widget_race", "3")
    assert widget.preview_rollback("fraud", alias="widget_race") is not None  # 3 -> 1
    cp.models.set_alias("fraud", "widget_race", "2")  # someone else, meanwhile
    assert widget.confirm_rollback() is None
    assert "changed since the preview" in widget.error["message"]
    assert _serving(cp, "widget_race") == "2"
    assert widget.pending["text"].startswith("fraud@widget_race: version 2 -> 3")
    assert widget.confirm_rollback() is not None and _serving(cp, "widget_race") == "3"


@pytest.mark.parametrize(("content", "field", "hint"), [
    ({"alias": "widget_never"}, "", "fraud@widget_never was never set"),
    ({"alias": "widget_err", "to": "9"}, "", "no version 9"),
    ({"alias": "widget_err", "to": "2"}, "to", "already points at version 2"),
    ({"alias": "bad alias!"}, "alias", "is not an alias"),
    ({"alias": "widget_err", "to": "next week"}, "to", "previous"),
])
def test_a_rollback_that_cannot_be_made_is_shown_and_changes_nothing(
        widget: ModelRegistry, cp: ControlPlane, content: dict[str, Any], field: str,
        hint: str) -> None:
    cp.models.set_alias("fraud", "widget_err", "1")
    cp.models.set_alias("fraud", "widget_err", "2")
    moves = _moves(cp, "widget_err")
    _send(widget, {"type": "preview", "name": "fraud", **content})
    assert widget.error["action"] == "rollback" and widget.error["field"] == field
    assert hint in widget.error["message"], widget.error
    assert widget.pending == {} and not widget.busy
    assert _serving(cp, "widget_err") == "2" and _moves(cp, "widget_err") == moves


def test_the_default_alias_is_the_widgets_serving_alias(cp: ControlPlane) -> None:
    w = ModelRegistry(cp, model="fraud", alias="widget_default")
    assert w.alias_choices[0] == "widget_default"
    assert w.preview_rollback("fraud") is None  # no alias given: the widget's
    assert "fraud@widget_default was never set" in w.error["message"]
    cp.models.set_alias("fraud", "widget_default", "3")
    cp.models.set_alias("fraud", "widget_default", "1")
    w.refresh()
    row = next(r for r in w.models if r["name"] == "fraud")
    assert row["serving"] == "1"  # the serving alias' column
    assert [v["version"] for v in w.versions if v["serving"]] == ["1"]  # highlighted
    pending = w.preview_rollback("fraud")
    assert pending is not None and pending.move == "fraud@widget_default: version 1 -> 3"
    w.alias = "widget_other"  # another serving alias: the tables follow
    assert [v["version"] for v in w.versions if v["serving"]] == []
    assert w.alias_choices[0] == "widget_other" and "widget_default" in w.alias_choices
    w.close()


def test_a_rollback_refused_on_confirm_is_shown_and_changes_nothing(
        widget: ModelRegistry, cp: ControlPlane) -> None:
    cp.models.set_alias("fraud", "widget_ov", "1")
    cp.models.set_alias("fraud", "widget_ov", "3")
    # fraud@widget_ov back at 1 would route fraud:1 twice: the control plane refuses the move
    cp.overlays.create("pinned", host=HOST, routes={"fraud@widget_ov": 50, "fraud:1": 50})
    moves = _moves(cp, "widget_ov")
    assert widget.preview_rollback("fraud", alias="widget_ov") is not None
    assert widget.confirm_rollback() is None
    assert "was not moved to 1" in widget.error["message"] and widget.pending == {}
    assert _serving(cp, "widget_ov") == "3" and _moves(cp, "widget_ov") == moves
    assert cp.overlays.get("pinned").revision == 1


def test_selecting_another_model_drops_the_pending_rollback(
        widget: ModelRegistry, cp: ControlPlane) -> None:
    cp.models.set_alias("fraud", "widget_sel", "1")
    cp.models.set_alias("fraud", "widget_sel", "2")
    assert widget.preview_rollback("fraud", alias="widget_sel") is not None
    widget.select("fraud")
    assert widget.pending["name"] == "fraud"  # the same model: kept
    # (as if the pending rollback was of another model than the one then selected)
    widget._flow.preview(RollbackRequest("other-model", "widget_sel", "previous"), "2", "1")
    widget.select("fraud")
    assert widget.pending == {} and widget.confirm_rollback() is None
    assert _serving(cp, "widget_sel") == "2"


def test_it_is_busy_while_python_works_and_never_raises_into_the_notebook(
        widget: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    widget.observe(lambda change: seen.append(change["new"]), names="busy")
    _send(widget, {"type": "refresh"})
    assert seen == [True, False]  # one busy spell, however many SDK calls it takes

    def broken() -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(widget.registry, "list", broken)
    _send(widget, {"type": "refresh"})  # not an SDK error: still shown, not raised
    assert widget.error == {"action": "refresh", "field": "",
                            "message": "unexpected error: RuntimeError: the disk is on fire"}
    assert not widget.busy
    _send(widget, {"type": "no-such-message"})  # ignored
    _send(widget, ["not", "an", "object"])
    monkeypatch.undo()
    _send(widget, {"type": "refresh"})
    assert widget.error == {} and seen[-2:] == [True, False]


def test_it_takes_a_control_plane(cp: ControlPlane) -> None:
    with pytest.raises(ValidationError, match="control plane"):
        ModelRegistry("fraud")  # type: ignore[arg-type]
    w = ModelRegistry(cp.models, model="fraud")  # or its registry
    assert w.selected == "fraud" and w.registry is cp.models
    w.close()
    with pytest.raises(ValidationError, match="no model named 'ghost'"):
        ModelRegistry(cp, model="ghost")


# -- register from an MLflow run ---------------------------------------------------------------


@pytest.fixture(scope="module")
def logged_run(registry_home: Path, workdir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The id of a run that logged a small sklearn model as ``model``, in a user's
    experiment of the shared registry's own tracking database (as a data scientist would)."""
    tracking_uri = f"sqlite:///{registry_home / 'mlflow.db'}"
    artifacts = tmp_path_factory.mktemp("widget-user-artifacts")
    experiment = MlflowClient(tracking_uri).create_experiment(
        "widget-user", artifact_location=artifacts.as_uri())
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    model = LogisticRegression(C=3.0).fit(x, (x[:, 0] > 0).astype(int))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                     pip_requirements=["scikit-learn", "cloudpickle"])
        yield run.info.run_id


def test_register_from_a_run_then_shows_the_new_version(
        widget: ModelRegistry, cp: ControlPlane, logged_run: str) -> None:
    uri = f"runs:/{logged_run}/model"
    assert "widget-run" not in cp.models
    _send(widget, {"type": "register", "name": "widget-run", "uri": uri, "label": "from a run"})
    assert widget.error == {} and not widget.busy
    v = cp.models.get("widget-run", 1)
    assert (v.source, v.label, v.flavor) == (uri, "from a run", "sklearn")
    assert widget.selected == "widget-run" and widget.selected_version == "1"
    assert widget.versions == [{
        "version": "1", "label": "from a run", "sha256": v.sha256, "short_sha": v.sha256[:12],
        "created_at": v.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "source": uri,
        "flavor": "sklearn", "aliases": [], "serving": False, "ui": None}]
    assert any(r["name"] == "widget-run" for r in widget.models)
    assert widget.notice == f"registered widget-run:1 from {uri}"
    # the same content again (from code): the existing version, said so
    again = widget.register_run("widget-run", uri)
    assert again == v and len(cp.models.versions("widget-run")) == 1
    assert "already had this content" in widget.notice


@pytest.mark.parametrize(("content", "field", "hint"), [
    ({"name": "widget-bad", "uri": "fraud.pkl"}, "model", "neither a model object nor"),
    ({"name": "widget-bad", "uri": "runs:/0123abcd"}, "model", "names a run but no model"),
    ({"name": "widget-bad", "uri": "s3://bucket/model"}, "model", "unsupported URI scheme"),
    ({"name": "widget-bad", "uri": ""}, "model", "runs:/<run_id>/model"),
    ({"name": "bad name!", "uri": "runs:/0123abcd/model"}, "name", "is not a model name"),
    ({"name": "", "uri": "runs:/0123abcd/model"}, "name", "give the model's name"),
    ({"name": "widget-bad", "uri": "runs:/0123456789abcdef0123456789abcdef/model"}, "",
     "no run with id"),
])
def test_a_registration_that_fails_is_shown_and_registers_nothing(
        widget: ModelRegistry, cp: ControlPlane, content: dict[str, Any], field: str,
        hint: str) -> None:
    _send(widget, {"type": "register", **content})
    assert widget.error["action"] == "register" and widget.error["field"] == field
    assert hint in widget.error["message"], widget.error
    assert "widget-bad" not in cp.models and not widget.busy and widget.notice == ""
    assert widget.selected == "fraud"


def test_a_registration_with_a_secret_in_its_label_is_refused(
        widget: ModelRegistry, cp: ControlPlane, logged_run: str) -> None:
    secret = "sk-" + "a1B2" * 10
    assert widget.register_run("widget-secret", f"runs:/{logged_run}/model",
                               label=f"key {secret}") is None
    assert widget.error["field"] == "label" and secret not in widget.error["message"]
    assert "widget-secret" not in cp.models

