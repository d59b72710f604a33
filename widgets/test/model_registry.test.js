// The ModelRegistry's front-end rules: node --test widgets/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  badges, canPreview, canRegister, confirmMessage, confirmState, formatCreated, inputFor,
  shortSha, sortRows, targetChoices,
} from "../model_registry.js";

const SHA = "c49631448489a020e73961485c27bd1807a3eeb5ccac4f8b134b463110e58ef0";
const NOW = Date.parse("2025-03-10T12:00:00Z");
const ago = (seconds) => new Date(NOW - seconds * 1000).toISOString().replace(/\.\d+Z$/, "Z");

test("a SHA-256 is shown by its first 12 hex characters", () => {
  assert.equal(shortSha(SHA), "c49631448489");
  assert.equal(shortSha(SHA, 7), "c496314");
  assert.equal(shortSha(""), "");
  assert.equal(shortSha(null), "");
});

test("created times read as a person says them", () => {
  assert.equal(formatCreated(ago(5), NOW), "just now");
  assert.equal(formatCreated(ago(60), NOW), "1 min ago");
  assert.equal(formatCreated(ago(25 * 60), NOW), "25 min ago");
  assert.equal(formatCreated(ago(3 * 3600), NOW), "3 h ago");
  assert.equal(formatCreated(ago(30 * 3600), NOW), "yesterday");
  assert.equal(formatCreated(ago(4 * 86400), NOW), "4 days ago");
  assert.equal(formatCreated("2024-12-25T08:00:00Z", NOW), "2024-12-25");
  assert.equal(formatCreated("2025-03-11T12:00:00Z", NOW), "2025-03-11"); // a clock ahead
  assert.equal(formatCreated(ago(-20), NOW), "just now"); // a little ahead
  assert.equal(formatCreated(null, NOW), "");
  assert.equal(formatCreated("not a time", NOW), "not a time");
});

const ROWS = [
  { version: "2", label: "b", created_at: "2025-03-02T00:00:00Z", source: "s", flavor: "sklearn" },
  { version: "10", label: null, created_at: "2025-03-10T00:00:00Z", source: "s", flavor: "onnx" },
  { version: "1", label: "a", created_at: "2025-03-01T00:00:00Z", source: "s", flavor: "sklearn" },
  { version: "3", label: "v10", created_at: "2025-03-03T00:00:00Z", source: "s", flavor: "pyfunc" },
];
const versionsOf = (rows) => rows.map((r) => r.version);

test("versions sort as numbers, newest first by default", () => {
  assert.deepEqual(versionsOf(sortRows(ROWS)), ["10", "3", "2", "1"]);
  assert.deepEqual(versionsOf(sortRows(ROWS, "version", false)), ["1", "2", "3", "10"]);
  assert.deepEqual(versionsOf(sortRows(ROWS, "created_at", true)), ["10", "3", "2", "1"]);
  assert.deepEqual(ROWS.map((r) => r.version), ["2", "10", "1", "3"], "the input is kept");
});

test("missing cells sort last either way; ties go newest first", () => {
  assert.deepEqual(versionsOf(sortRows(ROWS, "label", false)), ["1", "2", "3", "10"]);
  assert.deepEqual(versionsOf(sortRows(ROWS, "label", true)), ["3", "2", "1", "10"]);
  assert.deepEqual(versionsOf(sortRows(ROWS, "flavor", false)), ["10", "3", "2", "1"]);
  assert.deepEqual(versionsOf(sortRows(ROWS, "source", false)), ["10", "3", "2", "1"]);
});

test("alias badges put the serving alias first, highlighted", () => {
  assert.deepEqual(badges(["champion", "serving", "canary"], "serving"), [
    { alias: "serving", serving: true }, { alias: "canary", serving: false },
    { alias: "champion", serving: false }]);
  assert.deepEqual(badges([], "serving"), []);
  assert.deepEqual(badges(undefined, "serving"), []);
});

test("Register needs a name and a URI, and waits for Python", () => {
  assert.equal(canRegister({ name: "fraud", uri: "runs:/ab/model", label: "" }, false), true);
  assert.equal(canRegister({ name: "fraud", uri: "  ", label: "" }, false), false);
  assert.equal(canRegister({ name: "", uri: "runs:/ab/model", label: "" }, false), false);
  assert.equal(canRegister({ name: "fraud", uri: "runs:/ab/model", label: "" }, true), false);
});

test("the rollback target is previous or another version, newest first", () => {
  const versions = [{ version: "1" }, { version: "2" }, { version: "10" }, { version: "3" }];
  assert.deepEqual(targetChoices(versions, "3"), ["previous", "10", "2", "1"]);
  assert.deepEqual(targetChoices(versions, undefined), ["previous", "10", "3", "2", "1"]);
  assert.deepEqual(targetChoices([], null), ["previous"]);
});

const PENDING = { name: "fraud", alias: "champion", to: "previous", from_version: "3",
  to_version: "2", to_label: "C=0.1", text: "fraud@champion: version 3 -> 2 (label C=0.1)" };

test("Confirm and Cancel exist only for a previewed rollback, and wait for Python", () => {
  assert.deepEqual(confirmState({}, false), { open: false, confirm: false, cancel: false });
  assert.deepEqual(confirmState(null, false), { open: false, confirm: false, cancel: false });
  assert.deepEqual(confirmState(PENDING, false), { open: true, confirm: true, cancel: true });
  assert.deepEqual(confirmState(PENDING, true), { open: true, confirm: false, cancel: false });
});

test("Preview is refused while a rollback awaits its confirmation", () => {
  const choice = { model: "fraud", alias: "serving", to: "previous" };
  assert.equal(canPreview(choice, false, {}), true);
  assert.equal(canPreview(choice, true, {}), false);
  assert.equal(canPreview(choice, false, PENDING), false, "confirm or cancel it first");
  assert.equal(canPreview({ ...choice, alias: "" }, false, {}), false);
  assert.equal(canPreview({ ...choice, model: "" }, false, {}), false);
});

test("Confirm sends exactly the rollback that was shown", () => {
  assert.deepEqual(confirmMessage(PENDING), { type: "confirm", name: "fraud",
    alias: "champion", from_version: "3", to_version: "2" });
  assert.equal(confirmMessage({ ...PENDING, from_version: undefined }).from_version, null);
});

test("an error's field marks the input it belongs to", () => {
  assert.equal(inputFor({ action: "register", field: "model", message: "m" }), "uri");
  assert.equal(inputFor({ action: "register", field: "name", message: "m" }), "name");
  assert.equal(inputFor({ action: "register", field: "label", message: "m" }), "label");
  assert.equal(inputFor({ action: "rollback", field: "alias", message: "m" }), "alias");
  assert.equal(inputFor({ action: "rollback", field: "to", message: "m" }), "to");
  assert.equal(inputFor({ action: "rollback", field: "confirm", message: "m" }), null);
  assert.equal(inputFor({ action: "rollback", field: "model", message: "m" }), null);
  assert.equal(inputFor({ action: "register", field: "", message: "m" }), null);
  assert.equal(inputFor({}), null);
  assert.equal(inputFor(null), null);
});
