/**
 * Stale writes: every change the UI sends (a rollback, a weight change) carries the
 * revision of the overlay the user was looking at, and the server refuses it with 409
 * (field `revision`) when the overlay moved on meanwhile. The UI then shows the server's
 * message, refreshes, and lets the user check and try again.
 *
 * Pure (no JupyterLab imports) so node's test runner checks it (test/stale.test.ts).
 */

import { errorMessage, OverlayApiError } from './errors';

/** `body` plus `revision` when one is known (an integer); else `body` unchanged. */
export function withRevision(
  body: Record<string, unknown>,
  revision: number | null | undefined
): Record<string, unknown> {
  return typeof revision === 'number' && Number.isInteger(revision) ? { ...body, revision } : body;
}

/** The server refused a change because the overlay is not at the revision sent. */
export function isConflict(error: unknown): boolean {
  return error instanceof OverlayApiError && error.status === 409;
}

/** What the user is told after a 409: the server's message, then what happened. */
export const CONFLICT_HINT = 'changed meanwhile: refreshed, check and try again';

/**
 * The text shown when a change failed: for a 409 `CONFLICT_HINT` then the server's own
 * message (without the field prefix); otherwise `what failed: field: message`.
 */
export function changeFailure(what: string, error: unknown): string {
  if (isConflict(error)) {
    const message = error instanceof Error ? error.message.trim() : '';
    return `${what} not applied, ${CONFLICT_HINT}.${message ? ` Server: ${message}` : ''}`;
  }
  return `${what} failed: ${errorMessage(error)}`;
}
