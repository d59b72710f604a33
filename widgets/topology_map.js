// TopologyMap: the live graph host apps -> overlays -> model versions as SVG.
//
// Edge width is the traffic share (a route's weight, a shadow's percent: 1 px at 0 %, 15 px
// at 100 %), colour the health (ok, warn, error), shadow edges dashed; hovering gives calls,
// error rate and alerts. The Python side (overlay_sdk/widgets/topology_map.py) re-reads
// cp.topology() every few seconds and syncs it as `graph`; this module only draws it (and
// asks for {type: "refresh"} from its button). The layout rules are exported for node's
// test runner (widgets/test/topology_map.test.js).

const SVG = "http://www.w3.org/2000/svg";
export const HEALTHS = ["ok", "warn", "error"];
export const MIN_WIDTH = 1;
export const MAX_WIDTH = 15;

/** Stroke width (px) of an edge carrying `share` percent (clamped to 0..100). */
export function edgeWidth(share) {
  const s = Math.min(Math.max(Number(share) || 0, 0), 100);
  return MIN_WIDTH + (s * (MAX_WIDTH - MIN_WIDTH)) / 100;
}

/** A percent for people: "12.5%", "-" when unknown. */
export function pct(value, digits = 1) {
  return value === null || value === undefined || !Number.isFinite(Number(value))
    ? "-" : `${Number(value).toFixed(digits).replace(/\.0+$/, "")}%`;
}

/** `text` cut to `max` characters with an ellipsis. */
export function truncate(text, max) {
  const s = String(text);
  return s.length <= max ? s : `${s.slice(0, Math.max(1, max - 1))}…`;
}

/** Boxes of the nodes in three columns (0 hosts, 1 overlays, 2 versions), each column
 * centred vertically, rows in the order the graph gives (`node.row`). Returns
 * {width, height, boxes: Map id -> {x, y, w, h}, columns: the columns' x, boxW}. */
export function layout(graph, options = {}) {
  const { width = 760, boxW = 184, boxH = 36, gapY = 16, padX = 8, padTop = 26,
    padBottom = 10 } = options;
  const nodes = (graph && graph.nodes) || [];
  const rows = [0, 0, 0];
  for (const n of nodes) rows[n.column] = Math.max(rows[n.column], n.row + 1);
  const most = Math.max(1, ...rows);
  const step = boxH + gapY;
  const xs = [padX, (width - boxW) / 2, width - padX - boxW];
  const height = padTop + most * step - gapY + padBottom;
  const boxes = new Map();
  for (const n of nodes) {
    const offset = ((most - rows[n.column]) * step) / 2;
    boxes.set(n.id, { x: xs[n.column], y: padTop + offset + n.row * step, w: boxW, h: boxH });
  }
  return { width, height, boxes, columns: xs, boxW };
}

/** Where each edge leaves its source (right side) and enters its target (left side):
 * a node's edges are spread over its height, ordered by where their other ends are. Map id -> {x0, y0,
 * x1, y1}; edges whose nodes have no box are left out. */
export function anchors(edges, boxes) {
  const out = new Map();
  const outgoing = new Map();
  const incoming = new Map();
  for (const e of edges) {
    if (!boxes.has(e.source) || !boxes.has(e.target)) continue;
    if (!outgoing.has(e.source)) outgoing.set(e.source, []);
    if (!incoming.has(e.target)) incoming.set(e.target, []);
    outgoing.get(e.source).push(e);
    incoming.get(e.target).push(e);
  }
  // ports in the order of the other ends, top to bottom: edges of one node do not cross
  const top = (id) => boxes.get(id).y;
  for (const list of outgoing.values()) list.sort((p, q) => top(p.target) - top(q.target));
  for (const list of incoming.values()) list.sort((p, q) => top(p.source) - top(q.source));
  const spread = (box, i, n) => box.y + (box.h * (i + 1)) / (n + 1);
  for (const e of edges) {
    if (!boxes.has(e.source) || !boxes.has(e.target)) continue;
    const a = boxes.get(e.source);
    const b = boxes.get(e.target);
    const outs = outgoing.get(e.source);
    const ins = incoming.get(e.target);
    out.set(edgeId(e), {
      x0: a.x + a.w, y0: spread(a, outs.indexOf(e), outs.length),
      x1: b.x, y1: spread(b, ins.indexOf(e), ins.length),
    });
  }
  return out;
}

/** An edge's id (the Python side sends it; made from its ends otherwise). */
export function edgeId(edge) {
  return edge.id || `${edge.source}->${edge.target}`;
}

/** An SVG path (a smooth S curve) between two anchors. */
export function edgePath({ x0, y0, x1, y1 }) {
  const mx = (x0 + x1) / 2;
  const r = (v) => Math.round(v * 10) / 10;
  return `M ${r(x0)} ${r(y0)} C ${r(mx)} ${r(y0)}, ${r(mx)} ${r(y1)}, ${r(x1)} ${r(y1)}`;
}

const KIND_TEXT = { host: "traffic", route: "route", shadow: "shadow" };

/** The tooltip of an edge: share, observed share, calls, error rate, health, alerts. */
export function edgeTitle(edge) {
  const lines = [`${edge.source} → ${edge.target}`,
    `${KIND_TEXT[edge.kind] || edge.kind} ${pct(edge.share)}` +
      (edge.kind === "host" ? "" : ` (observed ${pct(edge.observed_share)})`),
    `${edge.calls || 0} calls, ${edge.errors || 0} failed, error rate ${
      pct(edge.error_rate === null || edge.error_rate === undefined ? null : edge.error_rate * 100)}`,
    `health: ${edge.health}${edge.reason ? ` (${edge.reason})` : ""}`];
  for (const a of edge.alerts || []) lines.push(`alert: ${a}`);
  return lines.join("\n");
}

/** The tooltip of a node. */
export function nodeTitle(node) {
  const lines = [`${node.kind} ${node.label}`];
  if (node.kind === "overlay") {
    lines.push(`revision ${node.revision}, ${node.mode}${node.state ? `, ${node.state}` : ""}`);
  } else if (node.kind === "version" && node.state) {
    lines.push(`gateway: ${node.state}`);
  }
  lines.push(`${node.calls || 0} calls, error rate ${
    pct(node.error_rate === null || node.error_rate === undefined ? null : node.error_rate * 100)}`);
  lines.push(`health: ${node.health}${node.reason ? ` (${node.reason})` : ""}`);
  for (const a of node.alerts || []) lines.push(`alert: ${a}`);
  return lines.join("\n");
}

/** The second line of a node's box. */
export function nodeSubtitle(node) {
  if (node.kind === "overlay") return `rev ${node.revision} · ${node.mode}`;
  const rate = node.error_rate === null || node.error_rate === undefined
    ? "" : ` · ${pct(node.error_rate * 100)} err`;
  return `${node.calls || 0} calls${rate}`;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c);
  return node;
}

function title(text) {
  const t = document.createElementNS(SVG, "title");
  t.textContent = text;
  return t;
}

/** The SVG of `graph` (a Topology's to_dict()). */
export function drawGraph(graph, options = {}) {
  const { width, height, boxes, columns, boxW } = layout(graph, options);
  const root = svg("svg", { class: "ov-topo-svg", viewBox: `0 0 ${width} ${height}`,
    width, height, role: "img", "aria-label": "topology: hosts, overlays, model versions" });
  const headers = (graph.columns || ["hosts", "overlays", "versions"]);
  headers.forEach((text, i) => root.append(svg("text", { class: "ov-topo-column",
    x: columns[i] + boxW / 2, y: 14, "text-anchor": "middle" }, text)));
  const edges = graph.edges || [];
  const where = anchors(edges, boxes);
  const edgeLayer = svg("g", { class: "ov-topo-edges" });
  const labelLayer = svg("g", { class: "ov-topo-labels" });
  // wide edges first: thin ones stay visible on top
  const order = edges.slice().sort((a, b) => edgeWidth(b.share) - edgeWidth(a.share));
  for (const e of order) {
    const at = where.get(edgeId(e));
    if (!at) continue;
    const w = edgeWidth(e.share);
    edgeLayer.append(svg("path", {
      class: `ov-topo-edge ov-topo-${e.health} ov-topo-${e.kind}`, d: edgePath(at),
      "stroke-width": w.toFixed(2), fill: "none", "data-source": e.source,
      "data-target": e.target, "data-kind": e.kind, "data-share": e.share,
      "data-observed-share": e.observed_share === null || e.observed_share === undefined
        ? "" : Number(e.observed_share).toFixed(2),
      "data-calls": e.calls || 0, "data-health": e.health, "data-width": w.toFixed(2),
    }, title(edgeTitle(e))));
    if (e.kind !== "host") {
      // the share beside the target, where each incoming edge has its own place
      labelLayer.append(svg("text", { class: "ov-topo-share", x: at.x1 - 5, y: at.y1,
        "text-anchor": "end", "dominant-baseline": "middle", "data-source": e.source,
        "data-target": e.target }, `${e.kind === "shadow" ? "shadow " : ""}${pct(e.share)}`));
    }
  }
  const nodeLayer = svg("g", { class: "ov-topo-nodes" });
  for (const n of graph.nodes || []) {
    const b = boxes.get(n.id);
    const g = svg("g", { class: `ov-topo-node ov-topo-${n.health} ov-topo-${n.kind}`,
      transform: `translate(${b.x},${b.y})`, "data-id": n.id, "data-kind": n.kind,
      "data-health": n.health }, title(nodeTitle(n)));
    g.append(svg("rect", { class: "ov-topo-box", width: b.w, height: b.h, rx: 4 }),
      svg("rect", { class: "ov-topo-stripe", width: 5, height: b.h, rx: 2 }),
      svg("text", { class: "ov-topo-label", x: 12, y: 15 }, truncate(n.label, 24)),
      svg("text", { class: "ov-topo-sub", x: 12, y: 29 }, truncate(nodeSubtitle(n), 30)));
    if (n.health !== "ok") {
      g.append(svg("text", { class: "ov-topo-mark", x: b.w - 8, y: 15, "text-anchor": "end" },
        n.health === "error" ? "✖" : "⚠"));
    }
    nodeLayer.append(g);
  }
  root.append(edgeLayer, labelLayer, nodeLayer);
  return root;
}

function render({ model, el }) {
  const root = h("div", { class: "ov-topo" });
  el.append(root);
  const refresh = h("button", { class: "ov-topo-refresh", title: "re-read the topology now",
    onclick: () => model.send({ type: "refresh" }) }, "Refresh");
  const windowText = h("span", { class: "ov-topo-window" });
  const updated = h("span", { class: "ov-topo-updated" });
  const error = h("div", { class: "ov-topo-message", role: "alert" });
  const canvas = h("div", { class: "ov-topo-canvas" });
  const legend = h("div", { class: "ov-topo-legend" },
    ...HEALTHS.map((s) => h("span", { class: `ov-topo-key ov-topo-key-${s}` }, h("i", {}), s)),
    h("span", { class: "ov-topo-key ov-topo-key-shadow" }, h("i", {}), "shadow"),
    h("span", {}, "width = traffic share"));
  root.append(h("div", { class: "ov-topo-head" }, h("b", {}, "Topology"), windowText, updated,
    refresh), error, canvas, legend);

  const stamp = () => {
    const interval = model.get("interval");
    updated.textContent = `updated ${new Date().toLocaleTimeString()}` +
      (interval > 0 ? ` · every ${interval} s` : "");
  };
  const draw = () => {
    const graph = model.get("graph") || {};
    windowText.textContent = graph.window ? ` · ${graph.window}` : "";
    canvas.replaceChildren();
    if (!graph.nodes || graph.nodes.length === 0) {
      canvas.append(h("div", { class: "ov-topo-empty" },
        "No overlays yet: create one with cp.overlays.create(...)."));
    } else {
      canvas.append(drawGraph(graph));
    }
    stamp();
  };
  const showError = () => {
    const message = model.get("error");
    error.textContent = message || "";
    error.style.display = message ? "" : "none";
  };
  model.on("change:graph", draw);
  model.on("change:refreshes", stamp);
  model.on("change:error", showError);
  draw();
  showError();
}

export default { render };
