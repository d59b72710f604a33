// The keyed diff behind the sidebar's refresh (what keeps scroll and selection): `jlpm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { planRows } from '../src/rows';

const shown = (pairs: [string, string][]) => new Map(pairs);

test('an unchanged list touches nothing', () => {
  const plan = planRows(shown([['a', '1'], ['b', '2']]), [
    { key: 'a', signature: '1' },
    { key: 'b', signature: '2' }
  ]);
  assert.deepEqual(plan, { remove: [], add: [], update: [], order: ['a', 'b'] });
});

test('only changed rows are redrawn; new ones added, gone ones removed', () => {
  const plan = planRows(shown([['a', '1'], ['b', '2'], ['c', '3']]), [
    { key: 'b', signature: '2*' },
    { key: 'd', signature: '4' },
    { key: 'a', signature: '1' }
  ]);
  assert.deepEqual(plan.update, ['b']);
  assert.deepEqual(plan.add, ['d']);
  assert.deepEqual(plan.remove, ['c']);
  assert.deepEqual(plan.order, ['b', 'd', 'a']);
});

test('a duplicate key keeps its first row', () => {
  const plan = planRows(new Map(), [
    { key: 'a', signature: '1' },
    { key: 'a', signature: '2' }
  ]);
  assert.deepEqual(plan.order, ['a']);
  assert.deepEqual(plan.add, ['a']);
});
