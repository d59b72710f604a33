"""Aliases, their recorded history and rollback in time (overlay_sdk.registry_aliases).

One registry (SQLite in a temp home) serves the module: model ``churn`` versions 1-5
(labels ``C=1.0``, ``C=0.1``, ``C=10.0``, and ``shared`` twice). History is per alias, so
each test moves its own alias with its own injected clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from mlflow import MlflowClient

from overlay_sdk import registry_aliases
from overlay_sdk.errors import BackendError, ConflictError, NotFoundError, ValidationError
from overlay_sdk.registry import UI_ENV, ModelRegistry
from overlay_sdk.registry_aliases import HISTORY_COLUMNS, TAG_PREFIX, AliasesMixin, AliasMove
from overlay_sdk.when import ACCEPTED_FORMS
from tests.conftest import _fit

MODEL = "churn"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


Registry = ModelRegistry
assert issubclass(Registry, AliasesMixin)


class Clock:
    """An injectable clock: ``registry.clock = Clock(t)``; ``clock.at = t`` moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp overlay home, and a temp current directory that MLflow must leave empty."""
    cwd = tmp_path_factory.mktemp("cwd")
    old = Path.cwd()
    os.chdir(cwd)
    yield tmp_path_factory.mktemp("overlay-home")
    os.chdir(old)
    assert not any(cwd.iterdir())


@pytest.fixture(scope="module")
def shared(home: Path) -> Registry:
    reg = Registry(f"sqlite:///{home}/mlflow.db")
    for c, label in ((1.0, "C=1.0"), (0.1, "C=0.1"), (10.0, "C=10.0"), (0.5, "shared"),
                     (2.0, "shared")):
        reg.register(MODEL, model=_fit(c), label=label)
    return reg


@pytest.fixture
def reg(shared: Registry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The shared registry with a fixed clock at T0 and no listeners."""
    monkeypatch.setattr(shared, "clock", Clock(T0))
    monkeypatch.setenv("OVERLAY_AUTHOR", "ana")
    yield shared
    shared.alias_listeners.clear()
    shared.alias_checks.clear()


@pytest.fixture(scope="module")
def client(shared: Registry) -> MlflowClient:
    return MlflowClient(shared.tracking_uri)


def clock(reg: Registry) -> Clock:
    assert isinstance(reg.clock, Clock)
    return reg.clock


def moves(reg: Registry, alias: str, *steps: tuple[timedelta, int]) -> None:
    """Set ``alias`` to each version at T0 + offset."""
    for offset, version in steps:
        clock(reg).at = T0 + offset
        reg.set_alias(MODEL, alias, version)


# -- the module ---------------------------------------------------------------------------


def test_exports_are_sorted_and_the_mixin_adds_no_state_to_the_class() -> None:
    names = registry_aliases.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert "__init__" not in vars(AliasesMixin)
    assert not {"_mlflow", "get", "resolve", "versions", "lock_dir"} & set(vars(AliasesMixin))


def test_listener_lists_belong_to_each_registry(shared: Registry, home: Path) -> None:
    other = Registry(f"sqlite:///{home}/mlflow.db")
    assert other.alias_listeners == [] and other.alias_listeners is other.alias_listeners
    assert other.alias_listeners is not shared.alias_listeners


# -- set, get, delete ---------------------------------------------------------------------


def test_set_alias_points_the_alias_and_get_version_by_alias_reads_it(reg: Registry) -> None:
    got = reg.set_alias(MODEL, "champion", 2)
    assert (got.name, got.version, got.label) == (MODEL, "2", "C=0.1")
    assert "champion" in got.aliases
    assert reg.get_version_by_alias(MODEL, "champion").version == "2"
    assert reg.resolve(f"{MODEL}@champion").version == "2"
    assert reg.set_alias(MODEL, "champion", "3").version == "3"
    assert reg.get_version_by_alias(MODEL, "champion").version == "3"


@pytest.mark.parametrize("alias", ["", "1st", "has space", "a.b", "latest", "Latest", "v3",
                                   "V12", "x" * 65, 3, None])
def test_set_alias_refuses_a_malformed_or_reserved_alias(reg: Registry, alias: Any) -> None:
    with pytest.raises(ValidationError) as err:
        reg.set_alias(MODEL, alias, 1)
    assert err.value.paths == ["alias"]
    assert "e.g. 'serving'" in str(err.value)


def test_set_alias_to_a_missing_version_or_model_says_what_exists(reg: Registry) -> None:
    with pytest.raises(NotFoundError, match=r"has no version 9; its versions are 1, 2, 3, 4, 5"):
        reg.set_alias(MODEL, "ghost", 9)
    with pytest.raises(NotFoundError, match=r"no registered model named 'chrun'.*'churn'"):
        reg.set_alias("chrun", "ghost", 1)
    with pytest.raises(ValidationError) as err:
        reg.set_alias(MODEL, "ghost", "three")
    assert err.value.paths == ["version"]
    assert reg.alias_history(MODEL, "ghost").empty


def test_get_version_by_alias_lists_the_aliases_that_exist(reg: Registry) -> None:
    reg.set_alias(MODEL, "listed", 1)
    with pytest.raises(NotFoundError, match=r"has no alias 'nope'; its aliases are .*listed"
                       r" \(-> 1\)"):
        reg.get_version_by_alias(MODEL, "nope")


def test_setting_the_alias_it_already_has_records_nothing(reg: Registry) -> None:
    calls: list[AliasMove] = []
    reg.set_alias(MODEL, "idem", 1)
    reg.alias_listeners.append(calls.append)
    clock(reg).at = T0 + timedelta(hours=1)
    assert reg.set_alias(MODEL, "idem", "1").version == "1"
    assert len(reg.alias_history(MODEL, "idem")) == 1
    assert calls == []


def test_delete_alias_is_recorded_and_rollback_restores_it(reg: Registry) -> None:
    moves(reg, "gone", (timedelta(0), 1), (timedelta(hours=1), 2))
    clock(reg).at = T0 + timedelta(hours=2)
    reg.delete_alias(MODEL, "gone", reason="retired")
    with pytest.raises(NotFoundError, match="has no alias 'gone'"):
        reg.get_version_by_alias(MODEL, "gone")
    last = reg.alias_history(MODEL, "gone").iloc[-1]
    assert (last["version"], last["previous"], last["reason"]) == (None, "2", "retired")
    clock(reg).at = T0 + timedelta(hours=3)
    assert reg.serving_at(MODEL, T0 + timedelta(hours=3), alias="gone") is None
    with pytest.raises(NotFoundError, match=r"churn@gone was deleted at 2024-05-01T10:00:00"
                       r"\+00:00 and not set again"):
        reg.rollback(MODEL, T0 + timedelta(hours=2, minutes=30), alias="gone")
    assert reg.rollback(MODEL, "previous", alias="gone").version == "2"
    assert reg.get_version_by_alias(MODEL, "gone").version == "2"
    with pytest.raises(NotFoundError, match="has no alias 'never'"):
        reg.delete_alias(MODEL, "never")


# -- how moves are recorded ---------------------------------------------------------------


def test_each_move_is_a_registered_model_tag_with_version_previous_author_reason(
        reg: Registry, client: MlflowClient) -> None:
    reg.set_alias(MODEL, "tagged", 1, reason="first")
    clock(reg).at = T0 + timedelta(minutes=5, milliseconds=7)
    reg.set_alias(MODEL, "tagged", 3, author="bo")
    tags = {k: v for k, v in client.get_registered_model(MODEL).tags.items()
            if k.startswith(f"{TAG_PREFIX}tagged.")}
    first_ms = int(T0.timestamp() * 1000)
    assert {k: json.loads(v) for k, v in tags.items()} == {
        f"overlay.alias.tagged.{first_ms:013d}":
            {"version": "1", "previous": None, "author": "ana", "reason": "first"},
        f"overlay.alias.tagged.{first_ms + 300_007:013d}":
            {"version": "3", "previous": "1", "author": "bo", "reason": None},
    }
    assert all(len(k) <= 250 and len(v) < 5000 for k, v in tags.items())


def test_recorded_times_strictly_increase_even_when_the_clock_does_not(reg: Registry) -> None:
    moves(reg, "skew", (timedelta(hours=1), 1), (timedelta(hours=1), 2), (timedelta(0), 3))
    times = list(reg.alias_history(MODEL, "skew")["time"])
    one_hour = pd.Timestamp(T0 + timedelta(hours=1))
    ms = pd.Timedelta(milliseconds=1)
    assert times == [one_hour, one_hour + ms, one_hour + 2 * ms]
    assert list(reg.alias_history(MODEL, "skew")["version"]) == ["1", "2", "3"]


def test_a_move_mlflow_refuses_leaves_no_record(reg: Registry, monkeypatch: pytest.MonkeyPatch,
                                                  client: MlflowClient) -> None:
    reg.set_alias(MODEL, "atomic", 1)

    def refuse(*args: Any) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(reg._mlflow.client, "set_registered_model_alias", refuse)
    clock(reg).at = T0 + timedelta(hours=1)
    with pytest.raises(BackendError, match=r"MLflow failed while moving churn@atomic to 2 .*"
                       r"database is locked"):
        reg.set_alias(MODEL, "atomic", 2)
    monkeypatch.undo()
    assert list(reg.alias_history(MODEL, "atomic")["version"]) == ["1"]
    assert reg.get_version_by_alias(MODEL, "atomic").version == "1"


def test_a_move_made_outside_overlay_sdk_shows_as_the_next_records_previous(
        reg: Registry, client: MlflowClient) -> None:
    moves(reg, "outside", (timedelta(0), 1), (timedelta(hours=1), 2))
    client.set_registered_model_alias(MODEL, "outside", "3")  # e.g. in the MLflow UI
    assert reg.rollback_target(MODEL, alias="outside").version == "2", "the last recorded"
    moves(reg, "outside", (timedelta(hours=2), 4))
    assert reg.alias_history(MODEL, "outside").iloc[-1]["previous"] == "3"
    # the alias already where MLflow has it, but not recorded: recorded (starts the record)
    client.set_registered_model_alias(MODEL, "outside", "5")
    moves(reg, "outside", (timedelta(hours=3), 5))
    last = reg.alias_history(MODEL, "outside").iloc[-1]
    assert (last["version"], last["previous"]) == ("5", "4")


def test_an_alias_set_only_outside_overlay_sdk_has_no_history(
        reg: Registry, client: MlflowClient) -> None:
    client.set_registered_model_alias(MODEL, "foreign", "2")
    with pytest.raises(NotFoundError, match=r"churn@foreign points at version 2 but its moves "
                       r"were never recorded .*set_alias\('churn', 'foreign', version\)"):
        reg.rollback(MODEL, alias="foreign")
    reg.set_alias(MODEL, "foreign", 2)
    assert list(reg.alias_history(MODEL, "foreign")["version"]) == ["2"]


@pytest.mark.parametrize("kwargs", [{"author": ""}, {"author": 3}, {"reason": "x" * 1001},
                                    {"reason": "  "}])
def test_author_and_reason_are_checked(reg: Registry, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        reg.set_alias(MODEL, "checked", 1, **kwargs)
    assert err.value.paths == list(kwargs)


def test_a_naive_clock_is_refused(reg: Registry) -> None:
    clock(reg).at = datetime(2024, 5, 1)
    with pytest.raises(ValidationError) as err:
        reg.set_alias(MODEL, "naive", 1)
    assert err.value.paths == ["clock"]


# -- history and serving_at ---------------------------------------------------------------


def test_alias_history_is_a_dataframe_of_moves_oldest_first(reg: Registry) -> None:
    moves(reg, "hist-a", (timedelta(0), 1))
    clock(reg).at = T0 + timedelta(minutes=1)
    reg.set_alias(MODEL, "hist-b", 2, author="bo", reason="canary passed")
    moves(reg, "hist-a", (timedelta(minutes=2), 3))
    frame = reg.alias_history(MODEL, "hist-a")
    assert tuple(frame.columns) == HISTORY_COLUMNS
    assert isinstance(frame["time"].dtype, pd.DatetimeTZDtype)
    assert str(frame["time"].dt.tz) == "UTC"
    assert all(frame[c].dtype == object for c in HISTORY_COLUMNS[1:])
    assert frame.to_dict("records") == [
        {"time": pd.Timestamp(T0), "alias": "hist-a", "version": "1", "previous": None,
         "author": "ana", "reason": None},
        {"time": pd.Timestamp(T0 + timedelta(minutes=2)), "alias": "hist-a", "version": "3",
         "previous": "1", "author": "ana", "reason": None},
    ]
    every = reg.alias_history(MODEL)
    mine = every[every["alias"].str.startswith("hist-")]
    assert list(zip(mine["alias"], mine["version"], strict=True)) == [
        ("hist-a", "1"), ("hist-b", "2"), ("hist-a", "3")]
    assert mine.iloc[1]["reason"] == "canary passed" and mine.iloc[1]["author"] == "bo"
    assert every["time"].is_monotonic_increasing


def test_alias_history_of_an_alias_never_set_is_empty_with_the_columns(reg: Registry) -> None:
    frame = reg.alias_history(MODEL, "unset")
    assert frame.empty and tuple(frame.columns) == HISTORY_COLUMNS
    with pytest.raises(NotFoundError, match="no registered model named 'nosuch'"):
        reg.alias_history("nosuch")


def test_serving_at_answers_what_was_serving_at_any_time(reg: Registry) -> None:
    moves(reg, "at", (timedelta(0), 1), (timedelta(hours=2), 2))
    clock(reg).at = T0 + timedelta(days=1)
    assert reg.serving_at(MODEL, T0 - timedelta(milliseconds=1), alias="at") is None
    got = reg.serving_at(MODEL, T0, alias="at")
    assert got is not None and got.version == "1", "a move at T counts from T on"
    got = reg.serving_at(MODEL, T0 + timedelta(hours=2) - timedelta(milliseconds=1), alias="at")
    assert got is not None and got.version == "1"
    got = reg.serving_at(MODEL, T0 + timedelta(hours=2), alias="at")
    assert got is not None and got.version == "2"
    got = reg.serving_at(MODEL, "22 hours ago", alias="at")
    assert got is not None and got.version == "2"
    got = reg.serving_at(MODEL, "yesterday", alias="at")
    assert got is not None and got.version == "1"
    with pytest.raises(ValidationError) as err:
        reg.serving_at(MODEL, T0 + timedelta(days=2), alias="at")
    assert err.value.paths == ["when"] and "in the future" in str(err.value)
    with pytest.raises(NotFoundError, match=r"churn@never-at was never set"):
        reg.serving_at(MODEL, T0, alias="never-at")


# -- rollback -----------------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "now_offset", "expected"), [
    # the timeline: now - 24 h = T0 + 1 d 1 h, an hour before v2 was set: v1 served
    ("serving", timedelta(days=2, hours=1), "1"),
    # two hours later, now - 24 h = T0 + 1 d 3 h: v2 served
    ("serving-b", timedelta(days=2, hours=3), "2"),
])
def test_rollback_to_yesterday_picks_the_version_serving_at_that_time(
        reg: Registry, alias: str, now_offset: timedelta, expected: str) -> None:
    moves(reg, alias, (timedelta(0), 1), (timedelta(days=1, hours=2), 2),
          (timedelta(days=1, hours=20), 3))
    clock(reg).at = now = T0 + now_offset
    assert reg.get_version_by_alias(MODEL, alias).version == "3"
    then = reg.serving_at(MODEL, now - timedelta(hours=24), alias=alias)
    assert then is not None and then.version == expected
    assert reg.rollback_target(MODEL, "yesterday", alias=alias).version == expected
    assert reg.get_version_by_alias(MODEL, alias).version == "3", "a dry run moves nothing"
    kwargs: dict[str, Any] = {} if alias == "serving" else {"alias": alias}  # the default
    got = reg.rollback(MODEL, to="yesterday", **kwargs)
    assert (got.name, got.version) == (MODEL, expected) and alias in got.aliases
    assert reg.get_version_by_alias(MODEL, alias).version == expected
    history = reg.alias_history(MODEL, alias)
    assert list(history["version"]) == ["1", "2", "3", expected]
    assert history.iloc[-1].to_dict() == {
        "time": pd.Timestamp(now), "alias": alias, "version": expected, "previous": "3",
        "author": "ana", "reason": "rollback to yesterday"}


def test_rollback_with_an_explicit_now_counts_back_from_it(reg: Registry) -> None:
    moves(reg, "explicit", (timedelta(0), 1), (timedelta(hours=5), 2))
    clock(reg).at = T0 + timedelta(days=30)
    got = reg.rollback(MODEL, "2 hours ago", alias="explicit", now=T0 + timedelta(hours=6))
    assert got.version == "1"
    assert reg.alias_history(MODEL, "explicit")["time"].iloc[-1] == pd.Timestamp(
        T0 + timedelta(days=30)), "the move is recorded at the clock's time"


def test_rollback_previous_returns_to_the_version_before_and_twice_undoes_itself(
        reg: Registry) -> None:
    calls: list[AliasMove] = []
    reg.alias_listeners.append(calls.append)
    moves(reg, "prev", (timedelta(0), 1), (timedelta(hours=1), 2), (timedelta(hours=2), 3))
    clock(reg).at = T0 + timedelta(hours=3)
    assert reg.rollback(MODEL, alias="prev").version == "2"
    clock(reg).at = T0 + timedelta(hours=4)
    assert reg.rollback(MODEL, "previous", alias="prev").version == "3"
    assert list(reg.alias_history(MODEL, "prev")["version"]) == ["1", "2", "3", "2", "3"]
    assert [(m.from_version, m.to_version) for m in calls] == [
        (None, "1"), ("1", "2"), ("2", "3"), ("3", "2"), ("2", "3")]
    assert calls[-1].reason == "rollback to previous"


def test_rollback_previous_with_one_recorded_position_says_there_is_none(reg: Registry) -> None:
    moves(reg, "single", (timedelta(0), 2))
    with pytest.raises(NotFoundError, match=r"churn@single has no earlier position: it was "
                       r"first set at 2024-05-01T08:00:00\+00:00 \(to version 2\); name a "
                       r"version instead"):
        reg.rollback(MODEL, alias="single")


@pytest.mark.parametrize("to", [1, "1", " 1 "])
def test_rollback_to_a_version(reg: Registry, to: Any) -> None:
    alias = f"byversion-{len(repr(to))}"  # 1, 3, 5: one alias per case
    moves(reg, alias, (timedelta(0), 3))
    clock(reg).at = T0 + timedelta(hours=1)
    assert reg.rollback(MODEL, to, alias=alias, reason="bad canary").version == "1"
    last = reg.alias_history(MODEL, alias).iloc[-1]
    assert (last["version"], last["previous"], last["reason"]) == ("1", "3", "bad canary")


def test_rollback_to_a_label(reg: Registry) -> None:
    moves(reg, "bylabel", (timedelta(0), 3))
    assert reg.rollback(MODEL, "C=0.1", alias="bylabel").version == "2"
    with pytest.raises(ValidationError, match=r"to: label 'shared' names versions 4, 5 of "
                       r"'churn'; give the version number instead"):
        reg.rollback(MODEL, "shared", alias="bylabel")


def test_rollback_to_a_datetime_or_iso_time(reg: Registry) -> None:
    moves(reg, "bytime", (timedelta(0), 1), (timedelta(hours=1), 2), (timedelta(hours=2), 3))
    clock(reg).at = T0 + timedelta(hours=3)
    paris = T0.astimezone(ZoneInfo("Europe/Paris")) + timedelta(minutes=30)
    assert reg.rollback(MODEL, paris, alias="bytime").version == "1"
    assert reg.alias_history(MODEL, "bytime")["reason"].iloc[-1] == (
        "rollback to 2024-05-01T10:30:00+02:00")
    assert reg.rollback(MODEL, "2024-05-01T09:30:00Z", alias="bytime").version == "2"
    with pytest.raises(ValidationError) as err:
        reg.rollback(MODEL, datetime(2024, 5, 1, 9), alias="bytime")
    assert err.value.paths == ["to"] and "no time zone" in str(err.value)


def test_rollback_to_before_the_alias_was_first_set_says_when_it_was(reg: Registry) -> None:
    moves(reg, "early", (timedelta(hours=10), 1), (timedelta(hours=11), 2))
    clock(reg).at = T0 + timedelta(days=1, hours=1)
    assert reg.serving_at(MODEL, "yesterday", alias="early") is None
    with pytest.raises(NotFoundError, match=r"churn@early was first set at "
                       r"2024-05-01T18:00:00\+00:00 \(to version 1\); nothing was serving at "
                       r"2024-05-01T09:00:00\+00:00: give a later time, or a version"):
        reg.rollback(MODEL, "yesterday", alias="early")
    assert reg.get_version_by_alias(MODEL, "early").version == "2"


def test_rollback_of_an_alias_never_set_says_so(reg: Registry) -> None:
    reg.set_alias(MODEL, "known", 1)
    with pytest.raises(NotFoundError, match=r"churn@nevermind was never set; aliases with a "
                       r"history: .*known.*; set it with set_alias\('churn', 'nevermind', "
                       r"version\)"):
        reg.rollback(MODEL, 1, alias="nevermind")


@pytest.mark.parametrize("to", ["tomorrow", "C=7", "", 0, -2, 2.5, None, ["1"]])
def test_rollback_to_anything_else_lists_every_accepted_form(reg: Registry, to: Any) -> None:
    moves(reg, "forms", (timedelta(0), 1))
    with pytest.raises(ValidationError) as err:
        reg.rollback(MODEL, to, alias="forms")
    assert err.value.paths == ["to"]
    if not isinstance(to, int) or to is None:
        for form in ("'previous'", "a version such as 3 or '3'", "the label of one version",
                     *ACCEPTED_FORMS):
            assert form in str(err.value)
    assert reg.get_version_by_alias(MODEL, "forms").version == "1"


def test_rollback_to_the_future_is_refused(reg: Registry) -> None:
    moves(reg, "future", (timedelta(0), 1))
    with pytest.raises(ValidationError, match=r"to: 2024-05-02T08:00:00\+00:00 is in the "
                       r"future \(now is 2024-05-01T08:00:00\+00:00\); give a past time"):
        reg.rollback(MODEL, T0 + timedelta(days=1), alias="future")


def test_rollback_to_the_current_version_records_nothing(reg: Registry) -> None:
    moves(reg, "stay", (timedelta(0), 1), (timedelta(hours=1), 2))
    clock(reg).at = T0 + timedelta(hours=2)
    assert reg.rollback(MODEL, "30 minutes ago", alias="stay").version == "2"
    assert len(reg.alias_history(MODEL, "stay")) == 2


# -- listeners ----------------------------------------------------------------------------


def test_listeners_get_each_move_after_it_is_made(reg: Registry) -> None:
    seen: list[tuple[AliasMove, str]] = []
    reg.alias_listeners.append(
        lambda move: seen.append((move, reg.get_version_by_alias(MODEL, move.alias).version)))
    moves(reg, "heard", (timedelta(0), 1))
    clock(reg).at = T0 + timedelta(minutes=1)
    reg.set_alias(MODEL, "heard", 2, author="bo", reason="promote")
    assert seen == [
        (AliasMove(MODEL, "heard", None, "1", T0, "ana", None), "1"),
        (AliasMove(MODEL, "heard", "1", "2", T0 + timedelta(minutes=1), "bo", "promote"), "2"),
    ]
    assert str(seen[1][0]) == ("churn@heard: 1 -> 2 at 2024-05-01T08:01:00+00:00 by bo")


def test_a_failing_listener_does_not_stop_the_others_nor_undo_the_move(reg: Registry) -> None:
    seen: list[str | None] = []

    def broken(move: AliasMove) -> None:
        raise RuntimeError("store is read-only")

    reg.alias_listeners.extend([broken, lambda move: seen.append(move.to_version)])
    with pytest.raises(BackendError, match=r"churn@loud: \(none\) -> 1 at .* was recorded, "
                       r"but 1 of 2 alias listener\(s\) failed: .*broken: RuntimeError: store "
                       r"is read-only; overlays naming churn@loud may still serve the old "
                       r"version") as err:
        reg.set_alias(MODEL, "loud", 1)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert seen == ["1"]
    assert reg.get_version_by_alias(MODEL, "loud").version == "1"
    assert list(reg.alias_history(MODEL, "loud")["version"]) == ["1"]


def test_a_hand_edited_record_is_skipped_with_a_warning(
        reg: Registry, client: MlflowClient, caplog: pytest.LogCaptureFixture) -> None:
    moves(reg, "edited", (timedelta(0), 1), (timedelta(hours=1), 2))
    client.set_registered_model_tag(MODEL, f"{TAG_PREFIX}edited.0000000000001", "not json")
    client.set_registered_model_tag(MODEL, f"{TAG_PREFIX}edited.0000000000002",
                                    '{"version": 3}')
    with caplog.at_level("WARNING", logger="overlay_sdk.registry_aliases"):
        assert list(reg.alias_history(MODEL, "edited")["version"]) == ["1", "2"]
    assert caplog.text.count("skipping the malformed alias record tag") == 2


# -- checks -------------------------------------------------------------------------------


def _state(reg: Registry, client: MlflowClient, alias: str) -> tuple[list[Any], str | None]:
    """The recorded history and MLflow's alias, to show that nothing changed."""
    aliases = dict(client.get_registered_model(MODEL).aliases)
    current = aliases.get(alias)
    return reg.alias_history(MODEL, alias).to_dict("records"), (
        None if current is None else str(current))


def test_check_lists_belong_to_each_registry(shared: Registry, home: Path) -> None:
    other = Registry(f"sqlite:///{home}/mlflow.db")
    assert other.alias_checks == [] and other.alias_checks is other.alias_checks
    assert other.alias_checks is not shared.alias_checks
    assert other.alias_checks is not other.alias_listeners


def test_checks_get_the_prospective_move_before_anything_is_recorded(
        reg: Registry, client: MlflowClient) -> None:
    seen: list[tuple[AliasMove, int, str | None]] = []

    def check(move: AliasMove) -> None:  # sees the state before the move
        history, current = _state(reg, client, move.alias)
        seen.append((move, len(history), current))

    reg.alias_checks.append(check)
    heard: list[AliasMove] = []
    reg.alias_listeners.append(heard.append)
    moves(reg, "vetted", (timedelta(0), 1))
    clock(reg).at = T0 + timedelta(minutes=1)
    reg.set_alias(MODEL, "vetted", 2, author="bo", reason="promote")
    clock(reg).at = T0 + timedelta(minutes=2)
    reg.set_alias(MODEL, "vetted", 2)  # a no-op: no check, no listener
    clock(reg).at = T0 + timedelta(minutes=3)
    reg.rollback(MODEL, alias="vetted")
    clock(reg).at = T0 + timedelta(minutes=4)
    reg.delete_alias(MODEL, "vetted", reason="retire")
    expected = [
        AliasMove(MODEL, "vetted", None, "1", T0, "ana", None),
        AliasMove(MODEL, "vetted", "1", "2", T0 + timedelta(minutes=1), "bo", "promote"),
        AliasMove(MODEL, "vetted", "2", "1", T0 + timedelta(minutes=3), "ana",
                  "rollback to previous"),
        AliasMove(MODEL, "vetted", "1", None, T0 + timedelta(minutes=4), "ana", "retire"),
    ]
    assert [m for m, _, _ in seen] == expected
    assert [(n, cur) for _, n, cur in seen] == [(0, None), (1, "1"), (2, "2"), (3, "1")]
    assert heard == expected, "listeners get the very moves the checks approved"


@pytest.mark.parametrize("error", [ConflictError("overlay fraud-canary cannot take it"),
                                   ValidationError.at("spec.routes[0]", "no such feature")])
def test_a_check_that_raises_stops_every_kind_of_move_with_nothing_recorded(
        reg: Registry, client: MlflowClient, error: Exception) -> None:
    moves(reg, "guarded", (timedelta(0), 1), (timedelta(hours=1), 2))
    before = _state(reg, client, "guarded")
    heard: list[AliasMove] = []
    reg.alias_listeners.append(heard.append)

    def refuse(move: AliasMove) -> None:
        raise error

    reg.alias_checks.append(refuse)
    clock(reg).at = T0 + timedelta(hours=2)
    attempts: list[Callable[[], object]] = [lambda: reg.set_alias(MODEL, "guarded", 3),
                lambda: reg.rollback(MODEL, alias="guarded"),
                lambda: reg.rollback(MODEL, 1, alias="guarded"),
                lambda: reg.delete_alias(MODEL, "guarded")]
    for attempt in attempts:
        with pytest.raises(type(error)) as info:
            attempt()
        assert info.value is error, "the check's error propagates unchanged"
        assert _state(reg, client, "guarded") == before
    assert heard == []
    reg.alias_checks.clear()
    assert reg.set_alias(MODEL, "guarded", 3).version == "3"
    assert [m.to_version for m in heard] == ["3"]


def test_a_check_failing_otherwise_is_a_backend_error_naming_it(
        reg: Registry, client: MlflowClient) -> None:
    moves(reg, "buggy", (timedelta(0), 1))
    before = _state(reg, client, "buggy")
    calls: list[str | None] = []

    def broken_check(move: AliasMove) -> None:
        raise KeyError("overlays")

    reg.alias_checks.extend([broken_check, lambda move: calls.append(move.to_version)])
    with pytest.raises(BackendError, match=r"alias check .*broken_check failed on churn@buggy: "
                       r"1 -> 2 .*KeyError.*nothing was recorded or moved") as info:
        reg.set_alias(MODEL, "buggy", 2)
    assert isinstance(info.value.__cause__, KeyError)
    assert calls == [], "the first refusal stops the move"
    assert _state(reg, client, "buggy") == before


# -- rollback arguments -------------------------------------------------------------------


@pytest.mark.parametrize("now", ["2025-01-05", 1714550400, datetime(2024, 5, 1)])
def test_rollback_refuses_a_now_that_is_not_a_tz_aware_datetime(reg: Registry, now: Any) -> None:
    moves(reg, "nowarg", (timedelta(0), 1), (timedelta(hours=1), 2))
    recorded = len(reg.alias_history(MODEL, "nowarg"))
    for call in (reg.rollback, reg.rollback_target):
        with pytest.raises(ValidationError) as info:
            call(MODEL, 1, alias="nowarg", now=now)
        assert info.value.paths == ["now"]
    assert len(reg.alias_history(MODEL, "nowarg")) == recorded
    assert reg.get_version_by_alias(MODEL, "nowarg").version == "2"


@pytest.mark.parametrize("to", [0, "0", " 0 ", "00"])
def test_rollback_to_version_zero_says_versions_start_at_1(reg: Registry, to: Any) -> None:
    moves(reg, "zero", (timedelta(0), 1))
    with pytest.raises(ValidationError, match="versions start at 1") as info:
        reg.rollback(MODEL, to, alias="zero")
    assert info.value.paths == ["to"]


def test_rollback_to_a_label_works_with_a_malformed_ui_variable(
        reg: Registry, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UI_ENV, "not a url")
    other = Registry(f"sqlite:///{home}/mlflow.db")  # the variable does not stop this
    other.clock = Clock(T0)
    moves(reg, "labelled", (timedelta(0), 1))
    assert other.rollback(MODEL, "C=0.1", alias="labelled").version == "2"
    with pytest.raises(ValidationError) as info:
        other.versions(MODEL)
    assert info.value.paths == [UI_ENV]
