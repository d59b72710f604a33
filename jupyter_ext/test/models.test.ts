// "Roll back model..." and the models' alias badges: `jlpm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  aliasBadges,
  describeTarget,
  modelRollbackSummary,
  previousVersion,
  rollbackChoices,
  SERVING_ALIAS
} from '../src/models';

const NOW = Date.parse('2024-05-10T12:00:00Z');
const versions = [
  { version: '1', label: 'C=1.0', createdAt: '2024-05-08T12:00:00Z', aliases: [] },
  { version: '2', label: null, createdAt: '2024-05-10T11:55:00Z', aliases: ['champion'] },
  {
    version: '3',
    label: 'C=10.0',
    createdAt: '2024-05-10T11:59:50Z',
    aliases: ['serving', 'canary']
  }
];

test('each alias of a model reads `alias → version`, by alias name', () => {
  assert.deepEqual(
    aliasBadges(versions).map(b => b.text),
    ['canary → 3', 'champion → 2', 'serving → 3']
  );
  assert.deepEqual(aliasBadges(versions)[2], {
    alias: 'serving',
    version: '3',
    text: 'serving → 3'
  });
  assert.deepEqual(aliasBadges([]), []);
});

const move = (alias: string, from: string | null, to: string | null) => ({ alias, from, to });

test('"previous" is the version before the current one, as the SDK computes it', () => {
  const history = [move('serving', null, '3'), move('canary', null, '1'), move('serving', '3', '2')];
  assert.equal(previousVersion(history, 'serving', '2'), '3');
  // moved outside overlay-sdk since the last record: the last recorded version
  assert.equal(previousVersion(history, 'serving', '1'), '2');
  assert.equal(previousVersion([move('serving', null, '3')], 'serving', '3'), null);
  assert.equal(previousVersion([], 'serving', '3'), null);
  assert.equal(previousVersion(history, 'champion', '2'), null);
  assert.equal(SERVING_ALIAS, 'serving');
});

test('the choices: previous first, then every version newest first, current marked', () => {
  const choices = rollbackChoices(versions, '3', '2', NOW);
  assert.deepEqual(
    choices.map(c => c.to),
    ['previous', '3', '2', '1']
  );
  assert.deepEqual(
    choices.map(c => c.label),
    [
      'previous (version 2)',
      'version 3 · C=10.0 · just now · current',
      'version 2 · 5 min ago',
      'version 1 · C=1.0 · 2 d ago'
    ]
  );
  assert.equal(rollbackChoices(versions, '3', null, NOW)[0].label, 'previous');
  assert.equal(new Set(choices.map(c => c.label)).size, choices.length, 'labels are unique');
  assert.equal(describeTarget(choices[0], '2'), 'version 2 (previous)');
  assert.equal(describeTarget(choices[0], null), 'its previous version');
  assert.equal(describeTarget(choices[3], '2'), 'version 1');
});

test('the result names the move and the overlays that followed', () => {
  assert.equal(
    modelRollbackSummary({
      model: 'fraud',
      alias: 'serving',
      version: '2',
      previous: '3',
      overlays: ['checkout', { name: 'scoring', revision: 7 }]
    }),
    'fraud@serving: version 3 → 2. Overlays that followed: checkout, scoring (r7).'
  );
  assert.equal(
    modelRollbackSummary({
      model: 'fraud',
      alias: 'serving',
      version: '2',
      previous: '3',
      overlays: []
    }),
    'fraud@serving: version 3 → 2. No overlay routes to fraud@serving.'
  );
  assert.equal(
    modelRollbackSummary({
      model: 'fraud',
      alias: 'serving',
      version: '2',
      previous: '2',
      overlays: []
    }),
    'fraud@serving already pointed at version 2: nothing changed.'
  );
});
