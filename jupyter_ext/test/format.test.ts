// The sidebar's pure helpers: `jlpm test` (tsc -p tsconfig.test.json, then node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  dashboardCode,
  describeRevision,
  earlierRevisions,
  formatAge,
  formatShadow,
  formatWeights,
  healthOf,
  healthTitle,
  MISSING_EXTENSION,
  plural,
  rollbackSummary,
  SEGMENT_COLOURS,
  weightSegments
} from '../src/format';

test('weights read in route order with a middle dot', () => {
  assert.equal(formatWeights({ 'fraud:1': 90, 'fraud:2': 10 }), 'fraud:1 90% · fraud:2 10%');
  assert.equal(formatWeights({}), 'no routes');
});

test('bar segments keep route order, zero weights and cycle the colours', () => {
  const weights: Record<string, number> = {};
  for (let i = 0; i < SEGMENT_COLOURS + 1; i++) {
    weights[`m:${i}`] = i === 0 ? 0 : 10;
  }
  const segments = weightSegments(weights);
  assert.equal(segments.length, SEGMENT_COLOURS + 1);
  assert.deepEqual(segments[0], { ref: 'm:0', percent: 0, colour: 0 });
  assert.equal(segments[SEGMENT_COLOURS].colour, 0);
});

test('the shadow line and the health of a dot', () => {
  assert.equal(formatShadow({ ref: 'fraud:3', percent: 10 }), 'shadow fraud:3 10%');
  assert.equal(formatShadow(null), '');
  assert.equal(healthOf('warn'), 'warn');
  assert.equal(healthOf('degraded'), 'unknown');
  assert.equal(healthOf(undefined), 'unknown');
  assert.equal(healthTitle('error', 'error rate 40.0%'), 'error: error rate 40.0%');
  assert.equal(healthTitle('ok', ''), 'ok');
  assert.equal(plural(1, 'alert'), '1 alert');
  assert.equal(plural(3, 'alert'), '3 alerts');
});

test('ages are relative, then a date; unreadable times are blank', () => {
  const now = Date.parse('2024-05-10T12:00:00Z');
  assert.equal(formatAge('2024-05-10T11:59:50Z', now), 'just now');
  assert.equal(formatAge('2024-05-10T11:55:00Z', now), '5 min ago');
  assert.equal(formatAge('2024-05-10T09:00:00+00:00', now), '3 h ago');
  assert.equal(formatAge('2024-05-08T12:00:00Z', now), '2 d ago');
  assert.equal(formatAge('2024-04-01T12:00:00Z', now), '2024-04-01');
  assert.equal(formatAge('', now), '');
  assert.equal(formatAge('not a time', now), '');
});

const history = [1, 2, 3, 4].map(revision => ({
  revision,
  action: revision === 1 ? 'create' : 'apply',
  author: 'ana',
  createdAt: '2024-05-10T11:55:00Z',
  message: revision === 3 ? 'canary 5%' : '',
  changes: ''
}));

test('one can roll back to the revisions before the current one, newest first', () => {
  assert.deepEqual(
    earlierRevisions(history, 3).map(r => r.revision),
    [2, 1]
  );
  assert.deepEqual(earlierRevisions(history, 1), []);
  const now = Date.parse('2024-05-10T12:00:00Z');
  assert.equal(describeRevision(history[2], now), 'r3 · apply · ana · 5 min ago · canary 5%');
  assert.equal(describeRevision(history[0], now), 'r1 · create · ana · 5 min ago');
});

test('the dashboard cell gets the overlay by name and runs with the real constructor', () => {
  assert.equal(
    dashboardCode('fraud-check'),
    'from overlay_sdk.widgets import Dashboard\nimport overlay_sdk as ov\n\n' +
      'Dashboard(ov.connect().overlays.get("fraud-check"))'
  );
  assert.match(
    dashboardCode('a"b', ' k8s://kind/ns '),
    /Dashboard\(ov\.connect\("k8s:\/\/kind\/ns"\)\.overlays\.get\("a\\"b"\)\)$/
  );
});

test('the rollback summary names the new revision and its weights', () => {
  const overlay = { revision: 5, weights: { 'fraud:1': 100 } };
  assert.equal(
    rollbackSummary('fraud-check', 2, overlay),
    'Rolled back fraud-check to r2: now revision 5 (fraud:1 100%)'
  );
  assert.match(rollbackSummary('x', null, overlay), /to the previous revision: now revision 5/);
});

test('the missing-extension message says what to run', () => {
  assert.match(MISSING_EXTENSION, /jupyter server extension enable overlay_sdk\.jupyter/);
  assert.match(MISSING_EXTENSION, /restart JupyterLab/);
});
