/**
 * Pure helpers of the models: the alias badges of the sidebar (`serving → 3`) and the
 * choices, confirmation and result of "Roll back model..." (moving `model@serving` back;
 * the overlays routing to `model@serving` follow).
 *
 * No JupyterLab or DOM imports, so node's test runner checks them (test/models.test.ts).
 * The types are structural copies of api.ts's, so this module stands alone.
 */

import { formatAge } from './format';

/** The alias "Roll back model..." moves (the SDK's `DEFAULT_ALIAS`). */
export const SERVING_ALIAS = 'serving';

export interface IVersionLike {
  version: string;
  label: string | null;
  createdAt: string;
  aliases: string[];
}

export interface IAliasBadge {
  alias: string;
  version: string;
  /** `serving → 3`. */
  text: string;
}

/** Where each alias of a model points, by alias name: `[{alias: 'serving', version: '3'}]`. */
export function aliasBadges(versions: readonly IVersionLike[]): IAliasBadge[] {
  const badges: IAliasBadge[] = [];
  for (const v of versions) {
    for (const alias of v.aliases ?? []) {
      badges.push({ alias, version: v.version, text: `${alias} → ${v.version}` });
    }
  }
  return badges.sort((a, b) => (a.alias < b.alias ? -1 : a.alias > b.alias ? 1 : 0));
}

export interface IAliasMoveLike {
  alias: string;
  from: string | null;
  to: string | null;
}

/**
 * The version "previous" moves `alias` to, as the SDK computes it
 * (`ModelRegistry.rollback`): the version before the current one when the last recorded
 * move is the current position, else (moved outside overlay-sdk) the last recorded one.
 * null when there is none (never set, or set once).
 */
export function previousVersion(
  history: readonly IAliasMoveLike[],
  alias: string,
  current: string | null
): string | null {
  const moves = history.filter(m => m.alias === alias);
  const last = moves[moves.length - 1];
  if (!last) {
    return null;
  }
  return current !== null && last.to === current ? last.from : last.to;
}

export interface IRollbackChoice {
  /** What the dialog lists. */
  label: string;
  /** What the POST sends as `to`: `previous` or a version. */
  to: string;
}

/**
 * The items of the "roll back to" dialog: `previous` first (with the version it means
 * when known), then every version newest first, `3 · C=10.0 · 2 d ago`, the current one
 * marked.
 */
export function rollbackChoices(
  versions: readonly IVersionLike[],
  current: string | null,
  previous: string | null,
  now: number = Date.now()
): IRollbackChoice[] {
  const choices: IRollbackChoice[] = [
    {
      label: previous === null ? 'previous' : `previous (version ${previous})`,
      to: 'previous'
    }
  ];
  const newestFirst = [...versions].sort((a, b) => Number(b.version) - Number(a.version));
  for (const v of newestFirst) {
    const parts = [`version ${v.version}`, v.label ?? '', formatAge(v.createdAt, now)];
    if (v.version === current) {
      parts.push('current');
    }
    choices.push({ label: parts.filter(Boolean).join(' · '), to: v.version });
  }
  return choices;
}

/** The version a choice moves to ('previous' resolved when known), for the confirmation. */
export function describeTarget(choice: IRollbackChoice, previous: string | null): string {
  if (choice.to === 'previous') {
    return previous === null ? 'its previous version' : `version ${previous} (previous)`;
  }
  return `version ${choice.to}`;
}

export type FollowedLike = string | { name: string; revision?: number | null };

/** `checkout (r4)` or `checkout`. */
export function followedName(item: FollowedLike): string {
  if (typeof item === 'string') {
    return item;
  }
  return typeof item.revision === 'number' ? `${item.name} (r${item.revision})` : item.name;
}

/**
 * The notification after a model rollback:
 * `fraud@serving: version 3 → 2. Overlays that followed: checkout (r4), scoring (r7).`
 */
export function modelRollbackSummary(result: {
  model: string;
  alias: string;
  version: string;
  previous: string | null;
  overlays: readonly FollowedLike[];
}): string {
  const ref = `${result.model}@${result.alias}`;
  if (result.previous === result.version) {
    return `${ref} already pointed at version ${result.version}: nothing changed.`;
  }
  const move =
    result.previous === null
      ? `now version ${result.version}`
      : `version ${result.previous} → ${result.version}`;
  const overlays = (result.overlays ?? []).map(followedName);
  const followed = overlays.length
    ? `Overlays that followed: ${overlays.join(', ')}.`
    : `No overlay routes to ${ref}.`;
  return `${ref}: ${move}. ${followed}`;
}
