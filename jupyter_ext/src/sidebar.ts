/**
 * The left sidebar "AI Overlays": overlays (mode, weights, health, alerts), the selected
 * overlay's revisions with rollback, models and their versions, recent alerts and a small
 * topology view, refreshed every `refreshInterval` seconds while visible.
 *
 * A refresh re-renders by keyed diffing (rows.ts), so the scroll position, the selection
 * and a focused button survive it. Stable hooks for browser tests: `data-testid` values
 * prefixed `overlay-sdk-`, `data-overlay="NAME"` on overlay rows, `data-revision="N"` on
 * revision rows and their rollback buttons. index.ts creates it; commands.ts drives it.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  errorMessage,
  IAlert,
  IModel,
  IModelVersion,
  IOverlay,
  IOverlayDetail,
  IRevision,
  IStatus,
  ITopology,
  OverlayApiError,
  OverlayClient
} from './api';
import {
  describeRevision,
  earlierRevisions,
  formatAge,
  formatShadow,
  formatWeights,
  healthOf,
  healthTitle,
  MISSING_EXTENSION,
  plural,
  rollbackSummary,
  weightSegments
} from './format';
import { overlaysIcon } from './icons';
import { aliasBadges } from './models';
import { syncRows } from './rows';
import { changeFailure } from './stale';
import { layoutTopology, renderTopology } from './topology';

export const SIDEBAR_ID = 'overlay-sdk:sidebar';
export const DEFAULT_REFRESH_SECONDS = 10;
export const MIN_REFRESH_SECONDS = 2;

/** Create an element with a class, text and attributes. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = '',
  attrs: Record<string, string> = {}
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (className) {
    el.className = className;
  }
  if (text) {
    el.textContent = text;
  }
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, value);
  }
  return el;
}

interface IResult {
  ok: boolean;
  text: string;
}

export class OverlaySidebar extends Widget {
  constructor(options: { client: OverlayClient }) {
    super();
    this._client = options.client;
    this.id = SIDEBAR_ID;
    this.title.icon = overlaysIcon;
    this.title.caption = 'AI Overlays';
    this.addClass('jp-OverlaySdk');
    this.node.dataset.testid = 'overlay-sdk-sidebar';
    this._build();
    this._schedule();
  }

  /** The client the sidebar (and the commands) call. */
  get client(): OverlayClient {
    return this._client;
  }

  /** The name of the selected overlay, or null. */
  get selected(): string | null {
    return this._selected;
  }

  /** The overlays of the last refresh, sorted by name. */
  get overlays(): readonly IOverlay[] {
    return this._overlays;
  }

  /** Seconds between refreshes while the sidebar is visible (at least 2). */
  get refreshInterval(): number {
    return this._interval;
  }

  set refreshInterval(seconds: number) {
    const value = Number(seconds);
    this._interval = Number.isFinite(value)
      ? Math.max(MIN_REFRESH_SECONDS, value)
      : DEFAULT_REFRESH_SECONDS;
    this._schedule();
  }

  /** Select an overlay (null: none) and show its revisions. */
  select(name: string | null): void {
    if (name === this._selected) {
      return;
    }
    this._selected = name;
    this._detail = null;
    this._result = null;
    this._markSelection();
    this._renderDetail();
    void this.refresh();
  }

  /**
   * Reload everything. Calls made while a refresh runs are folded into one more run after
   * it, so what a caller awaits includes the state after its own change.
   */
  refresh(): Promise<void> {
    if (this._running) {
      this._again = true;
      return this._running;
    }
    this._running = (async () => {
      do {
        this._again = false;
        await this._load();
      } while (this._again && !this.isDisposed);
    })().finally(() => {
      this._running = null;
    });
    return this._running;
  }

  /**
   * The revision of `name` the sidebar shows (its revisions list, else its row), or null
   * when it shows none: what a change sends as `revision`, so that the server refuses it
   * (409) when the overlay moved on meanwhile.
   */
  shownRevision(name: string): number | null {
    if (this._detail && this._detail.name === name) {
      return this._detail.revision;
    }
    return this._overlays.find(o => o.name === name)?.revision ?? null;
  }

  /**
   * Ask, then roll `name` back to revision `to` (null: the previous one), provided the
   * overlay is still at the revision shown when asked.
   */
  async confirmRollback(name: string, to: number | null): Promise<IOverlay | null> {
    const seen = this.shownRevision(name);
    const target = to === null ? 'the previous revision' : `revision ${to}`;
    const answer = await showDialog({
      title: 'Roll back overlay',
      body:
        `Roll back "${name}" to ${target}? It is applied again as a new revision; ` +
        'the gateway picks it up at once.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Roll back' })]
    });
    if (!answer.button.accept) {
      return null;
    }
    return this.rollback(name, to, seen);
  }

  /**
   * POST the rollback (with `revision`, default: the one shown now), show the new
   * revision or the server's error (field named; for a 409, that the overlay changed
   * meanwhile) in the result area, and refresh. Returns the overlay as the server
   * answered, or null.
   */
  async rollback(
    name: string,
    to: number | null,
    revision: number | null = this.shownRevision(name)
  ): Promise<IOverlay | null> {
    if (this._selected !== name) {
      this._selected = name;
      this._detail = null;
      this._markSelection();
    }
    this._result = { ok: true, text: `Rolling back ${name}…` };
    this._renderResult();
    let overlay: IOverlay | null = null;
    try {
      overlay = await this._client.rollback(name, to, { revision });
      this._result = { ok: true, text: rollbackSummary(name, to, overlay) };
    } catch (error) {
      this._result = { ok: false, text: changeFailure('Rollback', error) };
    }
    this._renderResult();
    await this.refresh();
    return overlay;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      void this.refresh();
    }
  }

  // -- building the static skeleton -----------------------------------------------------

  private _build(): void {
    const header = h('header', 'jp-OverlaySdk-header');
    const title = h('h2', 'jp-OverlaySdk-title');
    title.appendChild(overlaysIcon.element({ tag: 'span', className: 'jp-OverlaySdk-titleIcon' }));
    title.appendChild(h('span', '', 'AI Overlays'));
    const refresh = h('button', 'jp-OverlaySdk-iconButton jp-OverlaySdk-refresh', '', {
      type: 'button',
      title: 'Refresh',
      'aria-label': 'Refresh',
      'data-testid': 'overlay-sdk-refresh'
    });
    refresh.appendChild(refreshIcon.element({ tag: 'span' }));
    refresh.addEventListener('click', () => void this.refresh());
    header.append(title, refresh);
    this._statusLine = h('div', 'jp-OverlaySdk-statusLine', 'Loading…', {
      'data-testid': 'overlay-sdk-status'
    });
    this._missing = h('div', 'jp-OverlaySdk-missing', MISSING_EXTENSION, {
      'data-testid': 'overlay-sdk-missing',
      role: 'alert'
    });
    this._missing.hidden = true;
    this._error = h('div', 'jp-OverlaySdk-error', '', {
      'data-testid': 'overlay-sdk-error',
      role: 'alert'
    });
    this._error.hidden = true;

    this._body = h('div', 'jp-OverlaySdk-body');
    this._body.hidden = true;

    // overlays
    const overlays = h('section', 'jp-OverlaySdk-section', '', {
      'data-testid': 'overlay-sdk-overlays'
    });
    this._overlaysHeading = h('h3', 'jp-OverlaySdk-heading', 'Overlays');
    this._overlayList = h('div', 'jp-OverlaySdk-list', '', {
      role: 'listbox',
      'aria-label': 'Overlays'
    });
    this._overlayList.addEventListener('click', event => this._onOverlayClick(event));
    this._overlayList.addEventListener('keydown', event => this._onOverlayKey(event));
    this._overlaysEmpty = h(
      'p',
      'jp-OverlaySdk-empty',
      'No overlay yet: create one from a notebook with cp.overlays.create(...).'
    );
    overlays.append(this._overlaysHeading, this._overlayList, this._overlaysEmpty);

    // the selected overlay
    this._detailSection = h('section', 'jp-OverlaySdk-section jp-OverlaySdk-detail', '', {
      'data-testid': 'overlay-sdk-detail'
    });
    this._detailHeading = h('h3', 'jp-OverlaySdk-heading');
    this._detailHost = h('div', 'jp-OverlaySdk-host');
    const actions = h('div', 'jp-OverlaySdk-actions');
    this._previousButton = h(
      'button',
      'jp-OverlaySdk-button jp-OverlaySdk-rollbackPrevious',
      'Roll back to previous',
      { type: 'button', 'data-testid': 'overlay-sdk-rollback-previous' }
    );
    this._previousButton.addEventListener('click', () => {
      if (this._selected) {
        void this.confirmRollback(this._selected, null);
      }
    });
    actions.appendChild(this._previousButton);
    this._resultArea = h('div', 'jp-OverlaySdk-result', '', {
      'data-testid': 'overlay-sdk-result',
      role: 'status'
    });
    this._resultArea.hidden = true;
    this._revisionList = h('ol', 'jp-OverlaySdk-revisions', '', {
      'data-testid': 'overlay-sdk-revisions'
    });
    this._revisionList.addEventListener('click', event => this._onRevisionClick(event));
    this._detailSection.append(
      this._detailHeading,
      this._detailHost,
      actions,
      this._resultArea,
      this._revisionList
    );
    this._detailSection.hidden = true;

    // models
    const models = h('section', 'jp-OverlaySdk-section', '', {
      'data-testid': 'overlay-sdk-models'
    });
    this._modelsHeading = h('h3', 'jp-OverlaySdk-heading', 'Models');
    this._modelList = h('div', 'jp-OverlaySdk-list');
    this._modelsEmpty = h(
      'p',
      'jp-OverlaySdk-empty',
      'No model registered: cp.models.register(...) adds one.'
    );
    models.append(this._modelsHeading, this._modelList, this._modelsEmpty);

    // alerts
    this._alertsSection = h('section', 'jp-OverlaySdk-section', '', {
      'data-testid': 'overlay-sdk-alert-list'
    });
    this._alertList = h('ul', 'jp-OverlaySdk-alertList');
    this._alertsSection.append(h('h3', 'jp-OverlaySdk-heading', 'Recent alerts'), this._alertList);
    this._alertsSection.hidden = true;

    // topology
    const topology = h('section', 'jp-OverlaySdk-section', '', {
      'data-testid': 'overlay-sdk-topology'
    });
    this._topologyView = h('div', 'jp-OverlaySdk-topology');
    topology.append(h('h3', 'jp-OverlaySdk-heading', 'Topology'), this._topologyView);

    this._body.append(overlays, this._detailSection, models, this._alertsSection, topology);
    this.node.append(header, this._statusLine, this._missing, this._error, this._body);
  }

  // -- loading ----------------------------------------------------------------------------

  private _schedule(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
    if (this.isDisposed) {
      return;
    }
    this._timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, this._interval * 1000);
  }

  private async _load(): Promise<void> {
    let status: IStatus;
    try {
      status = await this._client.status();
    } catch (error) {
      if (!(error instanceof OverlayApiError) || error.extensionMissing) {
        this._showMissing(true);
      } else {
        this._showMissing(false);
        this._showError(
          error.status === 0
            ? `Could not refresh: ${errorMessage(error)}`
            : `The overlay-sdk server extension answered an error: ${errorMessage(error)}`
        );
      }
      return;
    }
    this._showMissing(false);
    const selected = this._selected;
    const [overlays, models, topology, alerts, detail] = await Promise.allSettled([
      this._client.overlays(),
      this._client.models(),
      this._client.topology(),
      this._client.alerts(5),
      selected ? this._client.overlay(selected) : Promise.resolve(null)
    ]);
    if (this.isDisposed) {
      return;
    }
    const scrollTop = this.node.scrollTop;
    const problems: string[] = [];
    const failed = (what: string, result: PromiseSettledResult<unknown>): void => {
      if (result.status === 'rejected') {
        problems.push(`${what}: ${errorMessage(result.reason)}`);
      }
    };
    failed('overlays', overlays);
    failed('models', models);
    failed('topology', topology);
    failed('alerts', alerts);
    this._status = status;
    if (overlays.status === 'fulfilled') {
      this._overlays = [...overlays.value].sort((a, b) => a.name.localeCompare(b.name));
      if (this._selected && !this._overlays.some(o => o.name === this._selected)) {
        this._selected = null;
        this._detail = null;
        this._result = null;
      }
    }
    if (this._selected === selected && detail.status === 'fulfilled') {
      this._detail = detail.value;
    } else if (this._selected === selected && detail.status === 'rejected') {
      const err = detail.reason;
      if (err instanceof OverlayApiError && err.status === 404) {
        this._selected = null;
        this._detail = null;
      } else {
        failed(`overlay ${selected}`, detail);
      }
    }
    this._renderStatus();
    this._renderOverlays();
    this._renderDetail();
    if (models.status === 'fulfilled') {
      this._renderModels(models.value);
    }
    if (alerts.status === 'fulfilled') {
      this._renderAlerts(alerts.value);
    }
    if (topology.status === 'fulfilled') {
      this._renderTopology(topology.value);
    }
    this._showError(problems.length ? `Could not load ${problems.join('; ')}` : '');
    this._body.hidden = false;
    if (this.node.scrollTop !== scrollTop) {
      this.node.scrollTop = scrollTop;
    }
  }

  private _showMissing(missing: boolean): void {
    this._missing.hidden = !missing;
    if (missing) {
      this._body.hidden = true;
      this._error.hidden = true;
      this._statusLine.textContent = 'Server extension not found';
    }
  }

  private _showError(text: string): void {
    this._error.textContent = text;
    this._error.hidden = !text;
  }

  // -- rendering --------------------------------------------------------------------------

  private _renderStatus(): void {
    const status = this._status;
    if (!status) {
      return;
    }
    const time = new Date().toLocaleTimeString();
    this._statusLine.textContent = `${status.controlPlane} · updated ${time}`;
    this._statusLine.title = `overlay-sdk ${status.version}, control plane ${status.controlPlane}`;
  }

  private _renderOverlays(): void {
    const overlays = this._overlays;
    this._overlaysHeading.textContent = `Overlays (${overlays.length})`;
    this._overlaysEmpty.hidden = overlays.length > 0;
    syncRows(this._overlayList, overlays, {
      key: o => o.name,
      signature: o => JSON.stringify(o),
      create: o =>
        h('div', 'jp-OverlaySdk-overlay', '', {
          role: 'option',
          tabindex: '0',
          'data-overlay': o.name,
          'data-testid': 'overlay-sdk-overlay'
        }),
      render: (o, row) => this._drawOverlay(o, row)
    });
    this._markSelection();
  }

  private _drawOverlay(o: IOverlay, row: HTMLElement): void {
    row.textContent = '';
    row.dataset.health = healthOf(o.health);
    row.dataset.revision = String(o.revision);
    row.dataset.alerts = String(o.alerts);
    const head = h('div', 'jp-OverlaySdk-overlayHead');
    const health = healthOf(o.health);
    head.appendChild(
      h('span', `jp-OverlaySdk-dot jp-mod-${health}`, '', {
        title: healthTitle(o.health, o.healthReason),
        'aria-label': healthTitle(o.health, o.healthReason),
        'data-testid': 'overlay-sdk-health'
      })
    );
    head.appendChild(h('span', 'jp-OverlaySdk-name', o.name));
    head.appendChild(
      h('span', 'jp-OverlaySdk-badge jp-OverlaySdk-mode', o.mode, { title: `mode: ${o.mode}` })
    );
    head.appendChild(
      h('span', 'jp-OverlaySdk-rev', `r${o.revision}`, {
        title: `revision ${o.revision}, ${formatAge(o.updatedAt)} by ${o.author}`
      })
    );
    if (o.alerts > 0) {
      head.appendChild(
        h('span', 'jp-OverlaySdk-badge jp-OverlaySdk-alerts', String(o.alerts), {
          title: `${plural(o.alerts, 'alert')} in the last 24 h`,
          'data-testid': 'overlay-sdk-alerts'
        })
      );
    }
    row.appendChild(head);
    const text = formatWeights(o.weights);
    const bar = h('div', 'jp-OverlaySdk-bar', '', { role: 'img', 'aria-label': text });
    for (const seg of weightSegments(o.weights)) {
      const part = h('span', `jp-OverlaySdk-seg jp-OverlaySdk-seg-${seg.colour}`, '', {
        title: `${seg.ref} ${seg.percent}%`
      });
      part.style.width = `${Math.max(0, Math.min(100, seg.percent))}%`;
      bar.appendChild(part);
    }
    row.appendChild(bar);
    row.appendChild(h('div', 'jp-OverlaySdk-weights', text, { 'data-testid': 'overlay-sdk-weights' }));
    const shadow = formatShadow(o.shadow);
    if (shadow) {
      row.appendChild(h('div', 'jp-OverlaySdk-shadow', shadow));
    }
    if (o.healthReason && health !== 'ok') {
      row.appendChild(h('div', `jp-OverlaySdk-reason jp-mod-${health}`, o.healthReason));
    }
  }

  private _markSelection(): void {
    for (const child of Array.from(this._overlayList.children)) {
      const row = child as HTMLElement;
      const on = row.dataset.overlay === this._selected;
      row.classList.toggle('jp-mod-selected', on);
      row.setAttribute('aria-selected', on ? 'true' : 'false');
    }
  }

  private _renderDetail(): void {
    const name = this._selected;
    this._detailSection.hidden = name === null;
    if (name === null) {
      this._detailSection.removeAttribute('data-overlay');
      this._revisionList.textContent = '';
      return;
    }
    this._detailSection.dataset.overlay = name;
    this._detailHeading.textContent = `Revisions of ${name}`;
    const detail: IOverlayDetail | null =
      this._detail && this._detail.name === name ? this._detail : null;
    this._detailHost.textContent = detail ? `host ${detail.host}` : 'Loading…';
    const history: IRevision[] = detail ? [...detail.history].reverse() : [];
    const current = detail ? detail.revision : 0;
    this._previousButton.disabled = !detail || earlierRevisions(history, current).length === 0;
    const now = Date.now();
    syncRows(this._revisionList, history, {
      key: r => String(r.revision),
      signature: r => JSON.stringify([r, r.revision === current, formatAge(r.createdAt, now)]),
      create: r =>
        h('li', 'jp-OverlaySdk-revision', '', {
          'data-revision': String(r.revision),
          'data-testid': 'overlay-sdk-revision'
        }),
      render: (r, row) => {
        row.textContent = '';
        row.classList.toggle('jp-mod-current', r.revision === current);
        row.title = r.changes || describeRevision(r, now);
        const text = h('div', 'jp-OverlaySdk-revisionText');
        text.appendChild(h('span', 'jp-OverlaySdk-rev', `r${r.revision}`));
        const meta = [r.action, r.author, formatAge(r.createdAt, now)].filter(Boolean).join(' · ');
        text.appendChild(h('span', 'jp-OverlaySdk-meta', meta, { title: r.createdAt }));
        if (r.message) {
          text.appendChild(h('span', 'jp-OverlaySdk-message', r.message));
        }
        row.appendChild(text);
        if (r.revision === current) {
          row.appendChild(h('span', 'jp-OverlaySdk-badge jp-OverlaySdk-current', 'current'));
        } else if (r.revision < current) {
          row.appendChild(
            h('button', 'jp-OverlaySdk-button jp-OverlaySdk-rollback', 'Roll back', {
              type: 'button',
              title: `Roll back ${name} to revision ${r.revision}`,
              'data-revision': String(r.revision),
              'data-testid': 'overlay-sdk-rollback'
            })
          );
        }
      }
    });
    this._renderResult();
  }

  private _renderResult(): void {
    const result = this._result;
    this._resultArea.hidden = !result;
    this._resultArea.textContent = result ? result.text : '';
    this._resultArea.classList.toggle('jp-mod-error', !!result && !result.ok);
    this._resultArea.dataset.state = result ? (result.ok ? 'ok' : 'error') : '';
  }

  private _renderModels(models: IModel[]): void {
    this._modelsHeading.textContent = `Models (${models.length})`;
    this._modelsEmpty.hidden = models.length > 0;
    syncRows(this._modelList, models, {
      key: m => m.name,
      signature: m => JSON.stringify(m),
      create: m =>
        h('div', 'jp-OverlaySdk-model', '', {
          'data-model': m.name,
          'data-testid': 'overlay-sdk-model'
        }),
      render: (m, row) => {
        row.textContent = '';
        const head = h('div', 'jp-OverlaySdk-modelHead');
        head.appendChild(h('span', 'jp-OverlaySdk-name', m.name));
        for (const badge of aliasBadges(m.versions)) {
          head.appendChild(
            h('span', 'jp-OverlaySdk-badge jp-OverlaySdk-alias', badge.text, {
              title: `${m.name}@${badge.alias} points at version ${badge.version}`,
              'data-alias': badge.alias,
              'data-version': badge.version,
              'data-testid': 'overlay-sdk-model-alias'
            })
          );
        }
        row.appendChild(head);
        const list = h('ul', 'jp-OverlaySdk-versions');
        for (const v of [...m.versions].reverse()) {
          list.appendChild(this._drawVersion(m.name, v));
        }
        row.appendChild(list);
      }
    });
  }

  private _drawVersion(model: string, v: IModelVersion): HTMLElement {
    const item = h('li', 'jp-OverlaySdk-version', '', {
      'data-version': v.version,
      title: [
        `${model}:${v.version}`,
        v.source,
        v.sha256 ? `sha256 ${v.sha256.slice(0, 12)}…` : '',
        formatAge(v.createdAt)
      ]
        .filter(Boolean)
        .join(' · ')
    });
    item.appendChild(h('span', 'jp-OverlaySdk-rev', `${model}:${v.version}`));
    if (v.label) {
      item.appendChild(h('span', 'jp-OverlaySdk-meta', v.label));
    }
    if (v.flavor) {
      item.appendChild(h('span', 'jp-OverlaySdk-badge', v.flavor));
    }
    if (v.aliases.length) {
      item.dataset.aliases = v.aliases.join(' ');
    }
    return item;
  }

  private _renderAlerts(alerts: IAlert[]): void {
    this._alertsSection.hidden = alerts.length === 0;
    syncRows(this._alertList, alerts, {
      key: a => `${a.time} ${a.overlay} ${a.kind} ${a.version ?? ''} ${a.subject ?? ''}`,
      signature: a => JSON.stringify([a, formatAge(a.time)]),
      create: () => h('li', 'jp-OverlaySdk-alert'),
      render: (a, row) => {
        row.textContent = '';
        row.appendChild(h('span', `jp-OverlaySdk-badge jp-mod-${a.kind}`, a.kind));
        row.appendChild(h('span', 'jp-OverlaySdk-name', a.overlay));
        const about = [a.version, a.subject].filter(Boolean).join(' · ');
        if (about) {
          row.appendChild(h('span', 'jp-OverlaySdk-rev', about));
        }
        row.appendChild(h('span', 'jp-OverlaySdk-meta', formatAge(a.time), { title: a.time }));
        row.appendChild(h('div', 'jp-OverlaySdk-message', a.message));
      }
    });
  }

  private _renderTopology(topology: ITopology): void {
    const layout = layoutTopology(topology);
    const signature = JSON.stringify(layout);
    if (signature === this._topologySignature) {
      return;
    }
    this._topologySignature = signature;
    renderTopology(this._topologyView, layout);
  }

  // -- events -----------------------------------------------------------------------------

  private _onOverlayClick(event: MouseEvent): void {
    const row = (event.target as HTMLElement).closest<HTMLElement>('[data-overlay]');
    if (row?.dataset.overlay) {
      this.select(row.dataset.overlay);
    }
  }

  private _onOverlayKey(event: KeyboardEvent): void {
    if (event.key !== 'Enter' && event.key !== ' ') {
      return;
    }
    const row = (event.target as HTMLElement).closest<HTMLElement>('[data-overlay]');
    if (row?.dataset.overlay) {
      event.preventDefault();
      this.select(row.dataset.overlay);
    }
  }

  private _onRevisionClick(event: MouseEvent): void {
    const button = (event.target as HTMLElement).closest<HTMLButtonElement>(
      'button.jp-OverlaySdk-rollback'
    );
    const revision = Number(button?.dataset.revision);
    if (button && this._selected && Number.isInteger(revision)) {
      void this.confirmRollback(this._selected, revision);
    }
  }

  private _client: OverlayClient;
  private _interval = DEFAULT_REFRESH_SECONDS;
  private _timer: number | null = null;
  private _running: Promise<void> | null = null;
  private _again = false;
  private _status: IStatus | null = null;
  private _overlays: IOverlay[] = [];
  private _selected: string | null = null;
  private _detail: IOverlayDetail | null = null;
  private _result: IResult | null = null;
  private _topologySignature = '';

  private _statusLine!: HTMLElement;
  private _missing!: HTMLElement;
  private _error!: HTMLElement;
  private _body!: HTMLElement;
  private _overlaysHeading!: HTMLElement;
  private _overlayList!: HTMLElement;
  private _overlaysEmpty!: HTMLElement;
  private _detailSection!: HTMLElement;
  private _detailHeading!: HTMLElement;
  private _detailHost!: HTMLElement;
  private _previousButton!: HTMLButtonElement;
  private _resultArea!: HTMLElement;
  private _revisionList!: HTMLElement;
  private _modelsHeading!: HTMLElement;
  private _modelList!: HTMLElement;
  private _modelsEmpty!: HTMLElement;
  private _alertsSection!: HTMLElement;
  private _alertList!: HTMLElement;
  private _topologyView!: HTMLElement;
}
