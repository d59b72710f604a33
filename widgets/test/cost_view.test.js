// CostView's front-end rules: node --test widgets/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { budgetState, usd } from "../cost_view.js";

test("dollars read as people write them", () => {
  assert.equal(usd(1234.5), "$1,234.50");
  assert.equal(usd(0), "$0.00");
  assert.equal(usd(0.0042123), "$0.0042");
  assert.equal(usd(null), "-");
  assert.equal(usd(Number.NaN), "-");
});

test("the budget state: ok, near (80%), over", () => {
  assert.equal(budgetState(1, null), null);
  assert.deepEqual(budgetState(2, 10), { share: 0.2, state: "ok" });
  assert.equal(budgetState(8, 10).state, "near");
  assert.equal(budgetState(12, 10).state, "over");
});
