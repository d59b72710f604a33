/**
 * The sidebar's small topology view: host apps -> overlays -> model versions as an SVG,
 * edge width = share (the route's weight or the shadow's percent), colour = health,
 * shadow edges dashed, reasons on hover.
 *
 * `layoutTopology` is pure (positions, paths, widths; tested in test/topology.test.ts);
 * `renderTopology` draws a layout into a container. The data is `GET topology`, i.e.
 * `cp.topology().to_dict()`, whose nodes already carry their column and row.
 */

export interface ITopologyNodeIn {
  id: string;
  kind: string;
  label: string;
  health: string;
  reason: string;
  column: number;
  row: number;
}

export interface ITopologyEdgeIn {
  source: string;
  target: string;
  kind: string;
  share: number;
  health: string;
  reason: string;
}

export interface ITopologyIn {
  nodes: ITopologyNodeIn[];
  edges: ITopologyEdgeIn[];
}

export interface ILaidNode {
  id: string;
  kind: string;
  label: string;
  /** The label cut to fit a column. */
  text: string;
  health: string;
  title: string;
  x: number;
  y: number;
}

export interface ILaidEdge {
  id: string;
  kind: string;
  health: string;
  share: number;
  width: number;
  /** An SVG path (a horizontal S-curve between the two nodes). */
  d: string;
  title: string;
}

export interface ITopologyLayout {
  width: number;
  height: number;
  nodes: ILaidNode[];
  edges: ILaidEdge[];
}

export const LAYOUT = {
  width: 280,
  pad: 34,
  rowHeight: 40,
  top: 16,
  radius: 6,
  minEdge: 1,
  maxEdge: 8,
  labelChars: 14
};

const HEALTHS = new Set(['ok', 'warn', 'error']);

/** Stroke width for a share in percent: 1 px at 0 %, 8 px at 100 % (clamped). */
export function edgeWidth(share: number): number {
  const clamped = Math.min(Math.max(Number(share) || 0, 0), 100);
  return LAYOUT.minEdge + (clamped * (LAYOUT.maxEdge - LAYOUT.minEdge)) / 100;
}

function cut(label: string, chars: number): string {
  return label.length <= chars ? label : `${label.slice(0, chars - 1)}…`;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** Where everything goes, for a viewBox of `LAYOUT.width` x the returned height. */
export function layoutTopology(topology: ITopologyIn): ITopologyLayout {
  const columns = [0, 1, 2];
  const rows = new Map<number, number>();
  for (const node of topology.nodes) {
    rows.set(node.column, Math.max(rows.get(node.column) ?? 0, node.row + 1));
  }
  const tallest = Math.max(1, ...Array.from(rows.values()));
  const span = (LAYOUT.width - 2 * LAYOUT.pad) / (columns.length - 1);
  const nodes: ILaidNode[] = topology.nodes.map(node => {
    const offset = ((tallest - (rows.get(node.column) ?? 1)) * LAYOUT.rowHeight) / 2;
    const health = HEALTHS.has(node.health) ? node.health : 'unknown';
    return {
      id: node.id,
      kind: node.kind,
      label: node.label,
      text: cut(node.label, LAYOUT.labelChars),
      health,
      title: node.reason ? `${node.label} (${health}): ${node.reason}` : `${node.label} (${health})`,
      x: round(LAYOUT.pad + node.column * span),
      y: round(LAYOUT.top + offset + node.row * LAYOUT.rowHeight + LAYOUT.radius)
    };
  });
  const where = new Map(nodes.map(n => [n.id, n]));
  const edges: ILaidEdge[] = [];
  for (const edge of topology.edges) {
    const a = where.get(edge.source);
    const b = where.get(edge.target);
    if (!a || !b) {
      continue;
    }
    const x1 = a.x + LAYOUT.radius;
    const x2 = b.x - LAYOUT.radius;
    const mid = round((x1 + x2) / 2);
    const health = HEALTHS.has(edge.health) ? edge.health : 'unknown';
    const share = Number(edge.share) || 0;
    edges.push({
      id: `${edge.source}->${edge.target}`,
      kind: edge.kind,
      health,
      share,
      width: round(edgeWidth(share)),
      d: `M ${round(x1)} ${a.y} C ${mid} ${a.y}, ${mid} ${b.y}, ${round(x2)} ${b.y}`,
      title:
        `${a.label} → ${b.label}: ${round(share)}%` +
        (edge.kind === 'shadow' ? ' (shadow)' : '') +
        (edge.reason ? ` — ${edge.reason}` : '')
    });
  }
  const height = round(LAYOUT.top + tallest * LAYOUT.rowHeight + 4);
  return { width: LAYOUT.width, height, nodes, edges };
}

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, String(value));
  }
  return el;
}

function titled<T extends SVGElement>(el: T, text: string): T {
  const title = document.createElementNS(SVG, 'title');
  title.textContent = text;
  el.appendChild(title);
  return el;
}

/** Draw `layout` into `container` (replacing what was there). */
export function renderTopology(container: HTMLElement, layout: ITopologyLayout): void {
  container.textContent = '';
  if (!layout.nodes.length) {
    const empty = document.createElement('p');
    empty.className = 'jp-OverlaySdk-empty';
    empty.textContent = 'Nothing to draw yet: no overlay is live.';
    container.appendChild(empty);
    return;
  }
  const root = svg('svg', {
    class: 'jp-OverlaySdk-topologySvg',
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    role: 'img',
    'aria-label': 'Topology: host apps, overlays and model versions',
    'data-testid': 'overlay-sdk-topology-svg'
  });
  for (const edge of layout.edges) {
    root.appendChild(
      titled(
        svg('path', {
          d: edge.d,
          class: `jp-OverlaySdk-edge jp-OverlaySdk-edge-${edge.kind} jp-mod-${edge.health}`,
          'stroke-width': edge.width,
          'data-edge': edge.id
        }),
        edge.title
      )
    );
  }
  for (const node of layout.nodes) {
    const group = svg('g', {
      class: `jp-OverlaySdk-node jp-OverlaySdk-node-${node.kind} jp-mod-${node.health}`,
      'data-node': node.id
    });
    group.appendChild(svg('circle', { cx: node.x, cy: node.y, r: LAYOUT.radius }));
    const label = svg('text', { x: node.x, y: node.y + LAYOUT.radius + 11, 'text-anchor': 'middle' });
    label.textContent = node.text;
    group.appendChild(label);
    root.appendChild(titled(group, node.title));
  }
  container.appendChild(root);
}
