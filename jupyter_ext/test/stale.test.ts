// Stale writes: the revision sent with a change, and what a 409 reads like: `jlpm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { OverlayApiError, parseError } from '../src/errors';
import { changeFailure, CONFLICT_HINT, isConflict, withRevision } from '../src/stale';

test('a change carries the revision shown, when one is known', () => {
  assert.deepEqual(withRevision({ to: 2, message: '' }, 5), { to: 2, message: '', revision: 5 });
  assert.deepEqual(withRevision({ to: null }, 0), { to: null, revision: 0 });
  assert.deepEqual(withRevision({ to: null }, null), { to: null });
  assert.deepEqual(withRevision({ to: null }, undefined), { to: null });
  assert.deepEqual(withRevision({ to: null }, 1.5), { to: null });
  const body = { weights: { 'fraud:1': 100 } };
  withRevision(body, 3);
  assert.deepEqual(body, { weights: { 'fraud:1': 100 } }, 'the body is not changed in place');
});

test("a 409 shows the server's message, says it refreshed and to check and try again", () => {
  const server =
    "overlay 'checkout' is at revision 4, not at revision 3 as you saw it: someone changed " +
    'it meanwhile; reload it, check, and try again';
  const err = parseError(409, { error: { status: 409, field: 'revision', message: server } }, '');
  assert.ok(isConflict(err));
  const text = changeFailure('Rollback', err);
  assert.ok(text.startsWith(`Rollback not applied, ${CONFLICT_HINT}.`), text);
  assert.match(CONFLICT_HINT, /changed meanwhile: refreshed, check and try again/);
  assert.ok(text.endsWith(server), text);
  assert.ok(!text.includes('revision: '), 'the field prefix is not repeated');
});

test('other failures name the field', () => {
  const err = new OverlayApiError('no revision 9', { status: 404, field: 'to' });
  assert.ok(!isConflict(err));
  assert.ok(!isConflict(new Error('boom')));
  assert.equal(changeFailure('Rollback', err), 'Rollback failed: to: no revision 9');
  assert.equal(changeFailure('Weight change', new Error('boom')), 'Weight change failed: boom');
});
