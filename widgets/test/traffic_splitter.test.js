// The TrafficSplitter's rules: node --test widgets/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { changed, debounce, distribute, preset, rebalance } from "../traffic_splitter.js";

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

// a small seeded generator: the same cases every run
function lcg(seed) {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}

function randomWeights(rand, n) {
  const cuts = Array.from({ length: n - 1 }, () => Math.floor(rand() * 101)).sort((a, b) => a - b);
  return [...cuts, 100].map((c, i) => c - (i ? cuts[i - 1] : 0));
}

test("distribute splits into integers summing to the total, like the SDK's", () => {
  assert.deepEqual(distribute(99, [90, 10]), [89, 10]);
  assert.deepEqual(distribute(10, [0, 0, 0]), [4, 3, 3]);
  assert.deepEqual(distribute(0, [5, 5]), [0, 0]);
  assert.deepEqual(distribute(7, []), []);
});

test("moving a slider rebalances the others proportionally", () => {
  assert.deepEqual(rebalance([50, 30, 20], 0, 80, [false, false, false]), [80, 12, 8]);
  assert.deepEqual(rebalance([100, 0], 1, 5, [false, false]), [95, 5]);
  assert.deepEqual(rebalance([90, 5, 5], 0, 0, [false, false, false]), [0, 50, 50]);
});

test("weights stay integers summing to 100 and locks never move, whatever the drag", () => {
  const rand = lcg(42);
  for (let run = 0; run < 5000; run += 1) {
    const n = 1 + Math.floor(rand() * 6);
    const weights = randomWeights(rand, n);
    const locked = weights.map(() => rand() < 0.3);
    const index = Math.floor(rand() * n);
    const value = Math.floor(rand() * 141) - 20; // out of range too
    const out = rebalance(weights, index, value, locked);
    assert.equal(sum(out), 100, JSON.stringify({ weights, locked, index, value, out }));
    assert.ok(out.every((w) => Number.isInteger(w) && w >= 0 && w <= 100));
    out.forEach((w, i) => { if (locked[i]) assert.equal(w, weights[i]); });
  }
});

test("the moved slider is clamped to what the locked ones leave", () => {
  assert.deepEqual(rebalance([40, 40, 20], 0, 90, [false, true, false]), [60, 40, 0]);
  // every other slider locked: the moved one cannot change
  assert.deepEqual(rebalance([40, 60], 0, 90, [false, true]), [40, 60]);
  assert.deepEqual(rebalance([100], 0, 30, [false]), [100]);
});

test("a locked slider does not move, nor does a preset move it", () => {
  assert.deepEqual(rebalance([40, 60], 0, 90, [true, false]), [40, 60]);
  assert.deepEqual(preset([95, 5], 1, 25, [false, true]), [95, 5]);
});

test("a bad value leaves the slider where it was", () => {
  assert.deepEqual(rebalance([70, 30], 1, Number.NaN, [false, false]), [70, 30]);
});

test("canary presets give the chosen version its percent", () => {
  for (const p of [1, 5, 25, 50]) {
    const out = preset([100, 0], 1, p, [false, false]);
    assert.deepEqual(out, [100 - p, p]);
  }
  assert.deepEqual(preset([60, 30, 10], 2, 5, [false, true, false]), [65, 30, 5]);
});

test("changed sees weight, shadow and shadow percent changes", () => {
  assert.equal(changed([50, 50], [50, 50], "", "", 100, 100), false);
  assert.equal(changed([60, 40], [50, 50], "", "", 100, 100), true);
  assert.equal(changed([50, 50], [50, 50], "m:3", "", 100, 100), true);
  assert.equal(changed([50, 50], [50, 50], "m:3", "m:3", 10, 100), true);
  assert.equal(changed([50, 50], [50, 50], "", "", 10, 100), false); // no shadow: no percent
});

test("debounce calls once, after the last of a burst", () => {
  let now = 0;
  const timers = new Map();
  let next = 1;
  const clock = {
    setTimeout: (fn, ms) => { timers.set(next, [now + ms, fn]); return next++; },
    clearTimeout: (id) => { timers.delete(id); },
  };
  const tick = (ms) => {
    now += ms;
    for (const [id, [at, fn]] of [...timers]) if (at <= now) { timers.delete(id); fn(); }
  };
  const calls = [];
  const live = debounce((x) => calls.push(x), 300, clock);
  live(1); tick(100); live(2); tick(100); live(3);
  assert.equal(live.pending(), true);
  tick(299);
  assert.deepEqual(calls, []);
  tick(1);
  assert.deepEqual(calls, [3]);
  live(4); live.cancel(); tick(1000);
  assert.deepEqual(calls, [3]);
});
