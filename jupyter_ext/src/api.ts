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
  label: string;
  sha256: string;
  flavor: string;
  createdAt: string;
  aliases: string[];
}

export interface IModel {
  name: string;
  versions: IModelVersion[];
}

export interface IStatus {
  version: string;
  controlPlane: string;
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
  kind: string;
  message: string;
  version: string;
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

  /** Re-apply revision `to` (null: the previous one) as a new revision. */
  rollback(name: string, to: number | null, message = ''): Promise<IOverlay> {
    return this.post<IOverlay>(['overlays', name, 'rollback'], { to, message });
  }

  /** Set the weights (and the shadow: undefined keeps it, null removes it). */
  traffic(
    name: string,
    weights: Record<string, number>,
    options: { shadow?: IShadow | null; message?: string } = {}
  ): Promise<IOverlay> {
    const body: Record<string, unknown> = { weights, message: options.message ?? '' };
    if (options.shadow !== undefined) {
      body.shadow = options.shadow;
    }
    return this.post<IOverlay>(['overlays', name, 'traffic'], body);
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
