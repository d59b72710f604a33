// How the REST client turns answers into errors: `jlpm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { errorMessage, OverlayApiError, parseError } from '../src/errors';

test("the server extension's error names its field", () => {
  const err = parseError(
    400,
    { error: { status: 400, field: 'weights', message: 'weights must sum to 100, got 90' } },
    ''
  );
  assert.ok(err instanceof OverlayApiError);
  assert.equal(err.status, 400);
  assert.equal(err.field, 'weights');
  assert.equal(err.extensionMissing, false);
  assert.equal(errorMessage(err), 'weights: weights must sum to 100, got 90');
});

test("a 404 of the extension (no such overlay) is not a missing extension", () => {
  const err = parseError(404, { error: { status: 404, field: '', message: "overlay 'x' not found" } }, '');
  assert.equal(err.extensionMissing, false);
  assert.equal(errorMessage(err), "overlay 'x' not found");
});

test("Jupyter's own 404 (an unknown route) means the server extension is missing", () => {
  const err = parseError(404, null, '<html>' + 'x'.repeat(500) + '</html>');
  assert.equal(err.extensionMissing, true);
  assert.equal(err.message, 'HTTP 404');
});

test("Jupyter's JSON errors (403 XSRF) keep their message", () => {
  const err = parseError(403, { message: "'_xsrf' argument missing from POST", reason: null }, '');
  assert.equal(err.extensionMissing, false);
  assert.equal(err.field, '');
  assert.equal(errorMessage(err), "'_xsrf' argument missing from POST");
});

test('errorMessage reads any thrown value', () => {
  assert.equal(errorMessage(new Error('boom')), 'boom');
  assert.equal(errorMessage('plain'), 'plain');
});
