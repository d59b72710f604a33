/**
 * The typed client of the server extension's REST API (docs/jupyter-extension-api.md).
 *
 * Every route lives under the Jupyter server's base_url, prefix `overlay-sdk/api/`, so the
 * client works behind JupyterHub; `ServerConnection.makeRequest` adds the token and the
 * XSRF header the server requires. A failed call throws `OverlayApiError`, which carries
 * the HTTP status (0: the server could not be reached) and the field the server named.
 * The sidebar (sidebar.ts) and the commands (commands.ts) are its only users.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { errorMessage, OverlayApiError, parseError } from './errors';
import { withRevision } from './stale';

export { errorMessage, OverlayApiError, parseError } from './errors';

/** Where the routes live, below the server's base_url. */
export const API_PREFIX = 'overlay-sdk/api';

export type Health = 'ok' | 'warn' | 'error' | 'unknown';

export interface IShadow {
  ref: string;
  percent: number;
}

/** One overlay as the server describes it (`OVERLAY` in the contract). */
export interface IOverlay {
  name: string;
  revision: number;
  mode: string;
  host: string;
  /** `"model:version"` -> integer percent, in route order. */
  weights: Record<string, number>;
  shadow: IShadow | null;
  health: Health;
  healthReason: string;
  /** Stored alerts of the last 24 h. */
  alerts: number;
  updatedAt: string;
  author: string;
  message: string;
}

export interface IRevision {
  revision: number;
  action: string;
  author: string;
  createdAt: string;
  message: string;
  changes: string;
}

/** `GET overlays/NAME`: the overlay and its history, oldest first. */
export interface IOverlayDetail extends IOverlay {
  history: IRevision[];
}

export interface IModelVersion {
  version: string;
  /** The version's label, null when it has none. */
  label: string | null;
  sha256: string;
  flavor: string;
  /** What it was made from, e.g. `sklearn:LogisticRegression` ('' when unknown). */
  source: string;
  createdAt: string;
  /** The aliases pointing at this version, sorted. */
  aliases: string[];
}

export interface IModel {
  name: string;
  /** null: the model has no version (yet). */
  latestVersion: string | null;
  /** In version order. */
  versions: IModelVersion[];
}

/** One recorded move of an alias (`GET models/NAME/aliases`), oldest first. */
export interface IAliasMove {
  alias: string;
  /** The version it pointed at before, null when it did not exist. */
  from: string | null;
  /** The version it points at after, null when it was deleted. */
  to: string | null;
  time: string;
  author: string;
  reason: string | null;
}

/** `GET models/NAME/aliases`: where each alias points, and their recorded moves. */
export interface IModelAliases {
  model: string;
  aliases: Record<string, string>;
  history: IAliasMove[];
}

/** An overlay that followed an alias move: its name (and new revision when given). */
export type FollowedOverlay = string | { name: string; revision?: number | null };

/** `POST models/NAME/rollback`: where the alias points now and the overlays that followed. */
export interface IModelRollback {
  model: string;
  alias: string;
  version: string;
  previous: string | null;
  overlays: FollowedOverlay[];
}

export interface IStatus {
  version: string;
  /** What `?plane=` takes to reach it: the overlay home folder, or the cluster address. */
  controlPlane: string;
  /** The model registry's MLflow tracking URI (a cluster's `ov.connect` needs it). */
  registryUri?: string | null;
  overlays: number;
  models: number;
}

export interface ITopologyNode {
  id: string;
  kind: string;
  label: string;
  health: Health;
  reason: string;
  column: number;
  row: number;
  alerts?: string[];
  revision?: number | null;
  mode?: string | null;
}

export interface ITopologyEdge {
  id?: string;
  source: string;
  target: string;
  kind: string;
  overlay: string;
  share: number;
  health: Health;
  reason: string;
}

/** `GET topology`: what `cp.topology().to_dict()` gives. */
export interface ITopology {
  nodes: ITopologyNode[];
  edges: ITopologyEdge[];
  window?: string;
  gateway?: string | null;
}

export interface IAlert {
  time: string;
  overlay: string;
  /** `drift` or `budget`. */
  kind: string;
  message: string;
  /** `fraud:2`, null when the alert is about no particular version. */
  version: string | null;
  /** What drifted (a feature such as `amount`), null when nothing in particular. */
  subject: string | null;
}

export interface IClientOptions {
  /** The server to talk to (default: the page's own). */
  serverSettings?: ServerConnection.ISettings;
  /** The `controlPlane` setting, read at each call ('' = the server's default). */
  plane?: () => string;
}

/** The client: one method per route of the contract. */
export class OverlayClient {
  readonly serverSettings: ServerConnection.ISettings;
  private _plane: () => string;

  constructor(options: IClientOptions = {}) {
    this.serverSettings = options.serverSettings ?? ServerConnection.makeSettings();
    this._plane = options.plane ?? (() => '');
  }

  /** The control plane address the calls pass (`?plane=`), '' for the server's own. */
  get plane(): string {
    return this._plane().trim();
  }

  status(): Promise<IStatus> {
    return this.request<IStatus>(['status']);
  }

  async overlays(): Promise<IOverlay[]> {
    return (await this.request<{ overlays: IOverlay[] }>(['overlays'])).overlays;
  }

  overlay(name: string): Promise<IOverlayDetail> {
    return this.request<IOverlayDetail>(['overlays', name]);
  }

  async models(): Promise<IModel[]> {
    return (await this.request<{ models: IModel[] }>(['models'])).models;
  }

  topology(since = '15m'): Promise<ITopology> {
    return this.request<ITopology>(['topology'], {}, { since });
  }

  async alerts(limit = 50): Promise<IAlert[]> {
    return (await this.request<{ alerts: IAlert[] }>(['alerts'], {}, { limit })).alerts;
  }

  modelAliases(model: string): Promise<IModelAliases> {
    return this.request<IModelAliases>(['models', model, 'aliases']);
  }

  /**
   * Re-apply revision `to` (null: the previous one) as a new revision. `revision`: the
   * revision the user saw; the server refuses with 409 (field `revision`) when the overlay
   * is at another one.
   */
  rollback(
    name: string,
    to: number | null,
    options: { message?: string; revision?: number | null } = {}
  ): Promise<IOverlay> {
    return this.post<IOverlay>(
      ['overlays', name, 'rollback'],
      withRevision({ to, message: options.message ?? '' }, options.revision)
    );
  }

  /**
   * Set the weights (and the shadow: undefined keeps it, null removes it). `revision`: as
   * for `rollback`.
   */
  traffic(
    name: string,
    weights: Record<string, number>,
    options: { shadow?: IShadow | null; message?: string; revision?: number | null } = {}
  ): Promise<IOverlay> {
    const body: Record<string, unknown> = { weights, message: options.message ?? '' };
    if (options.shadow !== undefined) {
      body.shadow = options.shadow;
    }
    return this.post<IOverlay>(['overlays', name, 'traffic'], withRevision(body, options.revision));
  }

  /**
   * Move `model@alias` back: `to` is `previous`, a version, a label or a time; the
   * overlays routing to `model@alias` follow.
   */
  rollbackModel(
    model: string,
    to: string,
    options: { alias?: string; reason?: string } = {}
  ): Promise<IModelRollback> {
    const body: Record<string, unknown> = { to, alias: options.alias ?? 'serving' };
    if (options.reason) {
      body.reason = options.reason;
    }
    return this.post<IModelRollback>(['models', model, 'rollback'], body);
  }

  /** The URL of a route (path segments are escaped; `plane` is added when set). */
  url(segments: string[], query: Record<string, string | number> = {}): string {
    const path = URLExt.join(
      this.serverSettings.baseUrl,
      API_PREFIX,
      ...segments.map(encodeURIComponent)
    );
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(query)) {
      params[key] = String(value);
    }
    if (this.plane) {
      params.plane = this.plane;
    }
    const search = URLExt.objectToQueryString(params);
    return search ? path + search : path;
  }

  private post<T>(segments: string[], body: unknown): Promise<T> {
    return this.request<T>(segments, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    });
  }

  private async request<T>(
    segments: string[],
    init: RequestInit = {},
    query: Record<string, string | number> = {}
  ): Promise<T> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        this.url(segments, query),
        init,
        this.serverSettings
      );
    } catch (error) {
      throw new OverlayApiError(
        `the Jupyter server could not be reached (${errorMessage(error)})`,
        { status: 0, extensionMissing: false }
      );
    }
    const text = await response.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
    }
    if (!response.ok) {
      throw parseError(response.status, body, text);
    }
    if (body === null) {
      throw new OverlayApiError(
        'the answer was not JSON: is the overlay-sdk server extension enabled?',
        { status: response.status, extensionMissing: true }
      );
    }
    return body as T;
  }
}
