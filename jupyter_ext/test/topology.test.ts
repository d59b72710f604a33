// The topology view's layout: `jlpm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { edgeWidth, LAYOUT, layoutTopology } from '../src/topology';

const node = (id: string, column: number, row: number, health = 'ok', reason = '') => ({
  id,
  kind: ['host', 'overlay', 'version'][column],
  label: id.split(':').slice(1).join(':'),
  health,
  reason,
  column,
  row
});

const graph = {
  nodes: [
    node('host:http://crm', 0, 0),
    node('overlay:scoring', 1, 0, 'warn', 'error rate 7.0%'),
    node('version:fraud:1', 2, 0),
    node('version:fraud:2', 2, 1, 'error', 'failed to load'),
    node('version:fraud:3', 2, 2)
  ],
  edges: [
    { source: 'host:http://crm', target: 'overlay:scoring', kind: 'host', share: 100, health: 'ok', reason: '' },
    { source: 'overlay:scoring', target: 'version:fraud:1', kind: 'route', share: 90, health: 'ok', reason: '' },
    { source: 'overlay:scoring', target: 'version:fraud:2', kind: 'route', share: 10, health: 'error', reason: 'failed' },
    { source: 'overlay:scoring', target: 'version:fraud:3', kind: 'shadow', share: 50, health: 'ok', reason: '' },
    { source: 'overlay:gone', target: 'version:fraud:1', kind: 'route', share: 5, health: 'ok', reason: '' }
  ]
};

test('edge width grows with the share, clamped to 0-100 %', () => {
  assert.equal(edgeWidth(0), LAYOUT.minEdge);
  assert.equal(edgeWidth(100), LAYOUT.maxEdge);
  assert.equal(edgeWidth(250), LAYOUT.maxEdge);
  assert.equal(edgeWidth(-5), LAYOUT.minEdge);
  assert.ok(edgeWidth(90) > edgeWidth(10));
});

test('columns go left to right and shorter columns are centred', () => {
  const layout = layoutTopology(graph);
  const at = new Map(layout.nodes.map(n => [n.id, n]));
  const host = at.get('host:http://crm')!;
  const overlay = at.get('overlay:scoring')!;
  const v1 = at.get('version:fraud:1')!;
  const v3 = at.get('version:fraud:3')!;
  assert.ok(host.x < overlay.x && overlay.x < v1.x);
  assert.equal(overlay.y, at.get('version:fraud:2')!.y);
  assert.ok(v1.y < v3.y);
  assert.ok(layout.height > v3.y);
  assert.equal(overlay.title, 'scoring (warn): error rate 7.0%');
});

test('edges between known nodes only, width by share, shadow and health kept', () => {
  const layout = layoutTopology(graph);
  assert.equal(layout.edges.length, 4);
  const byId = new Map(layout.edges.map(e => [e.id, e]));
  const main = byId.get('overlay:scoring->version:fraud:1')!;
  const canary = byId.get('overlay:scoring->version:fraud:2')!;
  assert.ok(main.width > canary.width);
  assert.equal(canary.health, 'error');
  assert.equal(byId.get('overlay:scoring->version:fraud:3')!.kind, 'shadow');
  assert.match(main.d, /^M [\d.]+ [\d.]+ C /);
  assert.equal(main.title, 'scoring → fraud:1: 90%');
});

test('an empty graph lays out to nothing', () => {
  const layout = layoutTopology({ nodes: [], edges: [] });
  assert.deepEqual(layout.nodes, []);
  assert.deepEqual(layout.edges, []);
});
