/**
 * The errors of the REST client: `OverlayApiError` and how an answer becomes one.
 *
 * Pure (no JupyterLab imports) so node's test runner checks it (test/errors.test.ts);
 * api.ts throws these, the sidebar and the commands show `errorMessage(error)`.
 */

/**
 * A failed call. `status` 0: no answer (network); `field`: the input the server blamed
 * ('' when none); `extensionMissing`: the answer did not come from the server extension
 * (404 or not its JSON error), i.e. the server extension is not enabled.
 */
export class OverlayApiError extends Error {
  readonly status: number;
  readonly field: string;
  readonly extensionMissing: boolean;

  constructor(
    message: string,
    options: { status: number; field?: string; extensionMissing?: boolean }
  ) {
    super(message);
    this.name = 'OverlayApiError';
    this.status = options.status;
    this.field = options.field ?? '';
    this.extensionMissing = options.extensionMissing ?? false;
  }
}

/** The text to show for any error: `field: message` when a field is named. */
export function errorMessage(error: unknown): string {
  if (error instanceof OverlayApiError) {
    return error.field ? `${error.field}: ${error.message}` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Turn a failed answer into an OverlayApiError. The server extension answers
 * `{"error": {"status", "field", "message"}}`; Jupyter's own errors (403 XSRF, 404 of an
 * unknown route) answer `{"message", "reason"}` or HTML.
 */
export function parseError(status: number, body: unknown, text: string): OverlayApiError {
  const envelope =
    body && typeof body === 'object' ? (body as Record<string, unknown>) : null;
  const inner = envelope?.error;
  if (inner && typeof inner === 'object') {
    const err = inner as Record<string, unknown>;
    return new OverlayApiError(String(err.message ?? `HTTP ${status}`), {
      status,
      field: typeof err.field === 'string' ? err.field : ''
    });
  }
  const message =
    (envelope && typeof envelope.message === 'string' && envelope.message) ||
    (envelope && typeof envelope.reason === 'string' && envelope.reason) ||
    (text && text.length < 200 ? text : '') ||
    `HTTP ${status}`;
  return new OverlayApiError(message, {
    status,
    extensionMissing: status === 404
  });
}
