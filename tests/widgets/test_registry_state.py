"""The ModelRegistry widget's decisions: rows from the SDK's DataFrames, what a message may
ask, and the rollback's confirmation step (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from overlay_sdk.errors import ValidationError
from overlay_sdk.registry import LIST_COLUMNS, ModelVersion, versions_frame
from overlay_sdk.widgets.registry_state import (
    PendingRollback,
    RegisterRequest,
    RollbackFlow,
    RollbackRequest,
    alias_choices,
    model_rows,
    parse_register,
    parse_rollback,
    short_sha,
    to_iso,
    version_rows,
)

SHA = "c49631448489a020e73961485c27bd1807a3eeb5ccac4f8b134b463110e58ef0"
T0 = datetime(2025, 3, 1, 12, 4, 5, 678000, tzinfo=UTC)


def _version(version: str, label: str | None, aliases: tuple[str, ...] = (),
             sha: str = SHA) -> ModelVersion:
    return ModelVersion("fraud", version, sha, label, T0 + timedelta(hours=int(version)),
                        "sklearn:LogisticRegression", "sklearn", aliases=aliases)


def test_version_rows_come_from_the_versions_frame() -> None:
    frame = versions_frame([
        _version("1", "C=1.0"),
        _version("2", None, ("champion", "serving"), sha="ab" * 32),  # no label: NaN in pandas
        _version("10", "v10", ("canary",)),
    ], ui_url="http://127.0.0.1:5000")
    rows = version_rows(frame.to_dict("records"), "serving")
    assert [r["version"] for r in rows] == ["1", "2", "10"]  # the SDK's order
    assert rows[0] == {
        "version": "1", "label": "C=1.0", "sha256": SHA, "short_sha": SHA[:12],
        "created_at": "2025-03-01T13:04:05Z", "source": "sklearn:LogisticRegression",
        "flavor": "sklearn", "aliases": [], "serving": False,
        "ui": "http://127.0.0.1:5000/#/models/fraud/versions/1"}
    assert rows[1]["label"] is None and rows[1]["short_sha"] == "abababababab"
    assert rows[1]["aliases"] == ["champion", "serving"] and rows[1]["serving"] is True
    assert rows[2]["aliases"] == ["canary"] and rows[2]["serving"] is False
    assert version_rows(versions_frame([]).to_dict("records"), "serving") == []


def test_model_rows_come_from_the_list_frame() -> None:
    frame = pd.DataFrame([
        {"name": "fraud", "latest_version": "3", "versions": 3,
         "aliases": {"serving": "2", "champion": "3"}, "updated_at": T0},
        {"name": "empty", "latest_version": None, "versions": 0, "aliases": {},
         "updated_at": T0},
    ], columns=list(LIST_COLUMNS))
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    rows = model_rows(frame.to_dict("records"), "serving")
    assert rows == [
        {"name": "fraud", "versions": 3, "latest": "3",
         "aliases": {"champion": "3", "serving": "2"}, "serving": "2",
         "updated_at": "2025-03-01T12:04:05Z"},
        {"name": "empty", "versions": 0, "latest": None, "aliases": {}, "serving": None,
         "updated_at": "2025-03-01T12:04:05Z"},
    ]
    assert model_rows(frame.to_dict("records"), "champion")[0]["serving"] == "3"


def test_short_sha_and_times() -> None:
    assert short_sha(SHA) == "c49631448489" and len(short_sha(SHA)) == 12
    assert short_sha(SHA, 7) == SHA[:7]
    assert short_sha(None) == short_sha(float("nan")) == ""
    assert to_iso(T0) == "2025-03-01T12:04:05Z"
    assert to_iso(datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == \
        "2025-03-01T12:00:00Z"
    assert to_iso(datetime(2025, 3, 1, 12, 0)) == "2025-03-01T12:00:00Z"  # naive: UTC
    assert to_iso(pd.Timestamp("2025-03-01 12:00", tz="UTC")) == "2025-03-01T12:00:00Z"
    assert to_iso(None) is None and to_iso(pd.NaT) is None and to_iso("yesterday") is None


def test_alias_choices_put_the_default_first() -> None:
    assert alias_choices({"champion": "3", "serving": "2"}, ["canary", "champion"],
                         "serving") == ["serving", "canary", "champion"]
    assert alias_choices([], [], "serving") == ["serving"]  # offered even when never set


# -- messages ----------------------------------------------------------------------------------


def test_a_register_message_becomes_a_request() -> None:
    assert parse_register({"type": "register", "name": " fraud ", "uri": "runs:/ab12/model",
                           "label": ""}) == RegisterRequest("fraud", "runs:/ab12/model", None)
    assert parse_register({"name": "fraud", "uri": "runs:/ab12/model", "label": " v2 "}
                          ).label == "v2"


@pytest.mark.parametrize(("content", "field"), [
    ([], "message"),
    ({"uri": "runs:/ab12/model"}, "name"),
    ({"name": "  ", "uri": "runs:/ab12/model"}, "name"),
    ({"name": "fraud"}, "model"),  # the URI is the SDK's `model`
    ({"name": "fraud", "uri": 3}, "model"),
    ({"name": "fraud", "uri": "runs:/" + "a" * 3000}, "model"),
    ({"name": "fraud", "uri": "runs:/ab12/model", "label": ["x"]}, "label"),
])
def test_a_malformed_register_message_names_its_field(content: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_register(content)
    assert err.value.paths == [field]


def test_a_preview_message_becomes_a_request_with_defaults() -> None:
    assert parse_rollback({"name": "fraud"}, "serving") == RollbackRequest(
        "fraud", "serving", "previous")
    assert parse_rollback({"name": "fraud", "alias": "champion", "to": 2}, "serving") == \
        RollbackRequest("fraud", "champion", "2")
    assert parse_rollback({"name": "fraud", "to": " 3 "}, "serving").to == "3"


@pytest.mark.parametrize(("content", "field"), [
    ("fraud", "message"),
    ({"alias": "serving"}, "name"),
    ({"name": "fraud", "alias": 3}, "alias"),
    ({"name": "fraud", "to": ["2"]}, "to"),
    ({"name": "fraud", "to": True}, "to"),
])
def test_a_malformed_preview_message_names_its_field(content: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_rollback(content, "serving")
    assert err.value.paths == [field]


# -- the confirmation step ---------------------------------------------------------------------

REQUEST = RollbackRequest("fraud", "champion", "previous")


def test_a_pending_rollback_says_what_would_move() -> None:
    pending = PendingRollback("fraud", "champion", "previous", "3", "2", "C=0.1")
    assert pending.text == "fraud@champion: version 3 -> 2 (label C=0.1)"
    assert pending.move == "fraud@champion: version 3 -> 2"
    assert PendingRollback("fraud", "serving", "2", None, "2").text == \
        "fraud@serving: (not set) -> 2"  # the alias was deleted: a rollback sets it again
    assert pending.as_dict() == {"name": "fraud", "alias": "champion", "to": "previous",
                                 "from_version": "3", "to_version": "2", "to_label": "C=0.1",
                                 "text": pending.text}


def test_preview_then_confirm() -> None:
    flow = RollbackFlow()
    assert flow.pending is None
    pending = flow.preview(REQUEST, "3", "2", "C=0.1")
    assert flow.pending == pending and pending.to_version == "2"
    assert flow.confirm(pending.as_dict()) == pending  # what the user saw
    assert flow.confirm() == pending  # (in code: the pending one)
    flow.done()
    assert flow.pending is None
    with pytest.raises(ValidationError, match="no rollback to confirm") as err:
        flow.confirm()  # a confirmation is used once
    assert err.value.paths == ["confirm"]


def test_preview_then_cancel_leaves_nothing_to_confirm() -> None:
    flow = RollbackFlow()
    pending = flow.preview(REQUEST, "3", "2")
    assert flow.cancel() == pending
    assert flow.pending is None and flow.cancel() is None
    with pytest.raises(ValidationError, match="preview one first"):
        flow.confirm(pending.as_dict())


def test_confirm_without_a_preview_is_refused() -> None:
    with pytest.raises(ValidationError, match="no rollback to confirm: preview one first"):
        RollbackFlow().confirm({"name": "fraud", "alias": "champion", "from_version": "3",
                                "to_version": "2"})


def test_confirming_another_rollback_than_the_previewed_one_is_refused() -> None:
    flow = RollbackFlow()
    pending = flow.preview(REQUEST, "3", "2")
    for key, other in (("to_version", "1"), ("from_version", "4"), ("alias", "serving"),
                       ("name", "churn")):
        with pytest.raises(ValidationError, match="not the one previewed") as err:
            flow.confirm({**pending.as_dict(), key: other})
        assert err.value.paths == ["confirm"]
    assert flow.pending == pending  # still there, to confirm as shown


def test_a_new_preview_replaces_the_pending_one_and_a_no_op_is_not_pending() -> None:
    flow = RollbackFlow()
    flow.preview(REQUEST, "3", "2")
    again = flow.preview(RollbackRequest("fraud", "champion", "1"), "3", "1")
    assert flow.pending == again
    with pytest.raises(ValidationError, match="already points at version 3") as err:
        flow.preview(RollbackRequest("fraud", "champion", "3"), "3", "3")
    assert err.value.paths == ["to"] and flow.pending is None
    assert flow.preview(REQUEST, None, "2").from_version is None  # not set now: a real move
