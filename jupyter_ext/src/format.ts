/**
 * Pure helpers of the sidebar and the commands: how weights, health, times and revisions
 * read, which revisions can be rolled back to, and the notebook cell "Open overlay
 * dashboard" inserts.
 *
 * No JupyterLab or DOM imports, so node's test runner checks them (test/format.test.ts).
 * The types are structural copies of api.ts's, so this module stands alone.
 */

export const CATEGORY = 'AI Overlays';

/** What the sidebar says when `GET status` answers 404 or does not answer JSON. */
export const MISSING_EXTENSION =
  'The overlay-sdk server extension is not enabled: run ' +
  '`jupyter server extension enable overlay_sdk.jupyter` and restart JupyterLab.';

export interface IWeightSegment {
  ref: string;
  percent: number;
  /** Index into the sidebar's palette of segment colours (cycles). */
  colour: number;
}

/** Number of distinct segment colours in style/base.css (`.jp-OverlaySdk-seg-N`). */
export const SEGMENT_COLOURS = 6;

/** The weights as bar segments, in route order, zero weights kept (they are routes). */
export function weightSegments(weights: Record<string, number>): IWeightSegment[] {
  return Object.entries(weights).map(([ref, percent], index) => ({
    ref,
    percent: Number(percent),
    colour: index % SEGMENT_COLOURS
  }));
}

/** `fraud:1 90% · fraud:2 10%` ('no routes' when there are none). */
export function formatWeights(weights: Record<string, number>): string {
  const parts = weightSegments(weights).map(s => `${s.ref} ${s.percent}%`);
  return parts.length ? parts.join(' · ') : 'no routes';
}

/** `shadow fraud:3 10%`, or '' without a shadow. */
export function formatShadow(shadow: { ref: string; percent: number } | null): string {
  return shadow ? `shadow ${shadow.ref} ${shadow.percent}%` : '';
}

export type HealthName = 'ok' | 'warn' | 'error' | 'unknown';

/** The health a dot shows: anything the contract does not name reads `unknown`. */
export function healthOf(health: string | null | undefined): HealthName {
  return health === 'ok' || health === 'warn' || health === 'error' ? health : 'unknown';
}

/** The hover text of a health dot: `warn: error rate 7.0% ...`. */
export function healthTitle(health: string, reason: string): string {
  const name = healthOf(health);
  return reason ? `${name}: ${reason}` : name;
}

/** `1 alert`, `3 alerts`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/**
 * How long ago an ISO time was, for rows: `just now`, `5 min ago`, `3 h ago`, `2 d ago`,
 * else the date (`2024-05-01`). '' for a missing or unreadable time.
 */
export function formatAge(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) {
    return '';
  }
  const then = Date.parse(iso);
  if (Number.isNaN(then)) {
    return '';
  }
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) {
    return 'just now';
  }
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ago`;
  }
  const hours = Math.round(minutes / 60);
  if (hours < 24) {
    return `${hours} h ago`;
  }
  const days = Math.round(hours / 24);
  if (days < 7) {
    return `${days} d ago`;
  }
  return new Date(then).toISOString().slice(0, 10);
}

export interface IRevisionLike {
  revision: number;
  action: string;
  author: string;
  createdAt: string;
  message: string;
}

/** The revisions one can roll back to: those before `current`, newest first. */
export function earlierRevisions<T extends IRevisionLike>(history: T[], current: number): T[] {
  return history.filter(r => r.revision < current).sort((a, b) => b.revision - a.revision);
}

/** One line for a revision: `r2 · apply · ana · 5 min ago · raise canary`. */
export function describeRevision(rev: IRevisionLike, now: number = Date.now()): string {
  const parts = [`r${rev.revision}`, rev.action, rev.author, formatAge(rev.createdAt, now)];
  if (rev.message) {
    parts.push(rev.message);
  }
  return parts.filter(Boolean).join(' · ');
}

/**
 * A Python string literal for `text`: JSON's escapes (`\\`, `\"`, `\n`, `\uXXXX`, also for
 * lone surrogates) are valid Python escapes with the same meaning, and JSON never writes
 * the escapes Python reads differently (`\x`, `\N`, octal). U+0085, U+2028 and U+2029,
 * which JSON leaves as they are, are escaped too: `str.splitlines` (IPython's input
 * handling) breaks lines there, which would cut the literal in two.
 */
export function pythonString(text: string): string {
  return JSON.stringify(text).replace(
    /[\u0085\u2028\u2029]/g,
    c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  );
}

/** Is `address` a cluster (`k8s://CONTEXT/NAMESPACE`) rather than an overlay home folder? */
export function isClusterAddress(address: string): boolean {
  return address.trim().toLowerCase().startsWith('k8s://');
}

/**
 * The `ov.connect(...)` call reaching control plane `plane` (a home folder or
 * `k8s://...`; '' = `ov.connect()`'s own default). A cluster also needs the model
 * registry: `registryUri` is added as `registry_uri=` for a `k8s://` address only (a home
 * folder holds its own registry).
 */
export function connectCall(plane = '', registryUri: string | null = ''): string {
  const address = plane.trim();
  if (!address) {
    return 'ov.connect()';
  }
  const args = [pythonString(address)];
  const registry = (registryUri ?? '').trim();
  if (isClusterAddress(address) && registry) {
    args.push(`registry_uri=${pythonString(registry)}`);
  }
  return `ov.connect(${args.join(', ')})`;
}

/**
 * The cell "Open overlay dashboard" inserts: `Dashboard` takes an overlay handle
 * (overlay_sdk/widgets/dashboard.py), so the cell connects and gets the overlay by name.
 * `plane`: the control plane's address (the `controlPlane` setting, else what `GET status`
 * says, as the kernel's working directory or `$OVERLAY_HOME` may differ from the
 * server's); `registryUri`: see `connectCall`.
 */
export function dashboardCode(overlay: string, plane = '', registryUri: string | null = ''): string {
  const connect = connectCall(plane, registryUri);
  const lines = ['from overlay_sdk.widgets import Dashboard', 'import overlay_sdk as ov', ''];
  if (connect.includes('registry_uri=') && (registryUri ?? '').includes(MASKED)) {
    // the server masks the registry's secrets: say so rather than fail at connect time
    lines.push(
      '# the server masked the registry URI\'s secrets (***): put them back, or give ' +
        'them as MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD'
    );
  }
  lines.push(`Dashboard(${connect}.overlays.get(${pythonString(overlay)}))`);
  return lines.join('\n');
}

/** What the server writes instead of a password or secret in the registry URI. */
export const MASKED = '***';

/** The line shown after a rollback: `Rolled back fraud-check to r2: now revision 5 (...)`. */
export function rollbackSummary(
  name: string,
  to: number | null,
  overlay: { revision: number; weights: Record<string, number> }
): string {
  const target = to === null ? 'the previous revision' : `r${to}`;
  return (
    `Rolled back ${name} to ${target}: now revision ${overlay.revision} ` +
    `(${formatWeights(overlay.weights)})`
  );
}
