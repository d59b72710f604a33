// DriftView's front-end rules: node --test widgets/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { orderAlerts, shortTime } from "../drift_view.js";

test("times are short and in UTC", () => {
  assert.equal(shortTime("2026-11-25T14:00:00+00:00"), "2026-11-25 14:00");
  assert.equal(shortTime("2026-11-25T15:30:00+01:00"), "2026-11-25 14:30");
  assert.equal(shortTime(""), "");
  assert.equal(shortTime("soon"), "soon");
});

test("alerts of the version shown come first, newest first", () => {
  const alerts = [
    { version: "fraud:1", time: "2026-11-25T10:00:00Z" },
    { version: "fraud:2", time: "2026-11-25T09:00:00Z" },
    { version: "fraud:2", time: "2026-11-25T11:00:00Z" },
    { version: "fraud:1", time: "2026-11-25T12:00:00Z" },
  ];
  assert.deepEqual(orderAlerts(alerts, "fraud:2").map((a) => `${a.version} ${a.time.slice(11, 13)}`),
    ["fraud:2 11", "fraud:2 09", "fraud:1 12", "fraud:1 10"]);
  assert.equal(alerts[0].version, "fraud:1"); // the input is kept
});
