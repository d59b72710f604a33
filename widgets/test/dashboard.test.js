// Dashboard's front-end rules: node --test widgets/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { TABS, headerLine } from "../dashboard.js";

test("the header line names mode, revision, routes and the shadow", () => {
  assert.equal(headerLine({ mode: "passthrough", revision: 7, routes: "fraud:1 90%, fraud:2 10%",
    shadow: "" }), "passthrough · revision 7 · fraud:1 90%, fraud:2 10%");
  assert.equal(headerLine({ mode: "shadow", revision: 2, routes: "a:1 100%", shadow: "a:2 at 50%" }),
    "shadow · revision 2 · a:1 100% · shadow a:2 at 50%");
  assert.equal(headerLine({ error: "overlay 'x' is deleted" }), "overlay 'x' is deleted");
  assert.equal(headerLine(null), "");
});

test("the tabs are the four widgets, traffic first", () => {
  assert.deepEqual(TABS.map(([key]) => key), ["traffic", "drift", "cost", "topology"]);
});
