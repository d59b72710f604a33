// The TopologyMap's drawing rules: node --test widgets/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  anchors, edgeId, edgePath, edgeTitle, edgeWidth, layout, nodeSubtitle, nodeTitle, pct, truncate,
} from "../topology_map.js";

// the shape Topology.to_dict() syncs: one host, two overlays, three versions
const GRAPH = {
  columns: ["hosts", "overlays", "versions"],
  nodes: [
    { id: "host:http://crm:8080", kind: "host", label: "crm:8080", column: 0, row: 0, health: "ok" },
    { id: "overlay:a", kind: "overlay", label: "a", column: 1, row: 0, health: "ok", revision: 2,
      mode: "passthrough", state: "serving", calls: 10, error_rate: 0 },
    { id: "overlay:b", kind: "overlay", label: "b", column: 1, row: 1, health: "warn", revision: 1,
      mode: "shadow", state: null, calls: 0, error_rate: null },
    { id: "version:fraud:1", kind: "version", label: "fraud:1", column: 2, row: 0, health: "ok" },
    { id: "version:fraud:2", kind: "version", label: "fraud:2", column: 2, row: 1,
      health: "error", calls: 4, error_rate: 0.25, reason: "error rate 25.0%", alerts: ["drift"] },
    { id: "version:fraud:3", kind: "version", label: "fraud:3", column: 2, row: 2, health: "ok" },
  ],
  edges: [
    { source: "host:http://crm:8080", target: "overlay:a", kind: "host", share: 50 },
    { source: "host:http://crm:8080", target: "overlay:b", kind: "host", share: 50 },
    { id: "overlay:a->version:fraud:1", source: "overlay:a", target: "version:fraud:1",
      kind: "route", share: 90, observed_share: 88.5, calls: 200, errors: 1, error_rate: 0.005,
      health: "warn", reason: "error rate 0.5%", alerts: [] },
    { source: "overlay:a", target: "version:fraud:2", kind: "route", share: 10 },
    { source: "overlay:a", target: "version:fraud:3", kind: "shadow", share: 25,
      alerts: ["amount of fraud:3 drifted"] },
    { source: "overlay:b", target: "version:fraud:2", kind: "route", share: 100 },
  ],
};

test("edge width grows with the share from 1 to 15 px, clamped", () => {
  assert.equal(edgeWidth(0), 1);
  assert.equal(edgeWidth(100), 15);
  assert.equal(edgeWidth(50), 8);
  assert.equal(edgeWidth(10), 2.4);
  assert.equal(edgeWidth(-5), 1);
  assert.equal(edgeWidth(250), 15);
  assert.equal(edgeWidth(undefined), 1);
  for (let s = 0; s < 100; s += 1) assert.ok(edgeWidth(s + 1) > edgeWidth(s));
});

test("layout puts hosts, overlays and versions in three columns, rows in order", () => {
  const { boxes, height, width, columns } = layout(GRAPH, { width: 760, boxW: 184, boxH: 36 });
  assert.equal(width, 760);
  assert.equal(boxes.size, GRAPH.nodes.length);
  const x = (id) => boxes.get(id).x;
  const y = (id) => boxes.get(id).y;
  assert.deepEqual(columns, [8, 288, 568]);
  assert.equal(x("host:http://crm:8080"), 8);
  assert.equal(x("overlay:a"), 288);
  assert.equal(x("version:fraud:1"), 568);
  assert.ok(y("overlay:a") < y("overlay:b"));
  assert.ok(y("version:fraud:1") < y("version:fraud:2") && y("version:fraud:2") < y("version:fraud:3"));
  // a shorter column is centred against the longest
  assert.equal(y("host:http://crm:8080"), y("version:fraud:2"));
  assert.equal((y("overlay:a") + y("overlay:b")) / 2, y("version:fraud:2"));
  // every box inside the drawing, none overlapping in its column
  for (const b of boxes.values()) {
    assert.ok(b.x >= 0 && b.x + b.w <= width && b.y >= 0 && b.y + b.h <= height);
  }
  const versions = ["version:fraud:1", "version:fraud:2", "version:fraud:3"].map((id) => boxes.get(id));
  for (let i = 1; i < versions.length; i += 1) assert.ok(versions[i].y >= versions[i - 1].y + versions[i - 1].h);
});

test("an empty graph lays out to an empty drawing", () => {
  const { boxes, height } = layout({ nodes: [], edges: [] });
  assert.equal(boxes.size, 0);
  assert.ok(height > 0);
  assert.equal(anchors([], boxes).size, 0);
});

test("edges leave the source's right side and enter the target's left side, spread out", () => {
  const { boxes } = layout(GRAPH);
  const at = anchors(GRAPH.edges, boxes);
  assert.equal(at.size, GRAPH.edges.length);
  const a = boxes.get("overlay:a");
  const outs = GRAPH.edges.filter((e) => e.source === "overlay:a").map((e) => at.get(edgeId(e)));
  assert.equal(outs.length, 3);
  for (const p of outs) {
    assert.equal(p.x0, a.x + a.w);
    assert.ok(p.y0 > a.y && p.y0 < a.y + a.h);
  }
  assert.deepEqual(outs.map((p) => p.y0), [a.y + 9, a.y + 18, a.y + 27]); // h 36, 3 edges
  const v2 = boxes.get("version:fraud:2");
  const ins = GRAPH.edges.filter((e) => e.target === "version:fraud:2").map((e) => at.get(edgeId(e)));
  assert.equal(ins[0].x1, v2.x);
  assert.notEqual(ins[0].y1, ins[1].y1);
  // ports follow the other ends top to bottom, whatever the order of the edges
  const swapped = anchors([GRAPH.edges[3], GRAPH.edges[2]], boxes);
  assert.ok(swapped.get("overlay:a->version:fraud:1").y0 < swapped.get("overlay:a->version:fraud:2").y0);
  // an edge to a node that is not drawn is left out
  assert.equal(anchors([{ source: "overlay:a", target: "version:gone:1" }], boxes).size, 0);
});

test("edge paths are S curves between the anchors", () => {
  assert.equal(edgePath({ x0: 0, y0: 10, x1: 100, y1: 50 }), "M 0 10 C 50 10, 50 50, 100 50");
  assert.equal(edgePath({ x0: 0.04, y0: 1 / 3, x1: 9, y1: 2 }), "M 0 0.3 C 4.5 0.3, 4.5 2, 9 2");
  assert.equal(edgeId(GRAPH.edges[0]), "host:http://crm:8080->overlay:a");
  assert.equal(edgeId(GRAPH.edges[2]), "overlay:a->version:fraud:1");
});

test("tooltips give share, observed share, calls, error rate, health and alerts", () => {
  const route = edgeTitle(GRAPH.edges[2]);
  assert.match(route, /route 90% \(observed 88\.5%\)/);
  assert.match(route, /200 calls, 1 failed, error rate 0\.5%/);
  assert.match(route, /health: warn \(error rate 0\.5%\)/);
  const shadow = edgeTitle(GRAPH.edges[4]);
  assert.match(shadow, /shadow 25% \(observed -\)/);
  assert.match(shadow, /alert: amount of fraud:3 drifted/);
  assert.doesNotMatch(edgeTitle(GRAPH.edges[0]), /observed/);
  const version = nodeTitle(GRAPH.nodes[4]);
  assert.match(version, /version fraud:2/);
  assert.match(version, /4 calls, error rate 25%/);
  assert.match(version, /health: error/);
  assert.match(version, /alert: drift/);
  assert.match(nodeTitle(GRAPH.nodes[1]), /revision 2, passthrough, serving/);
});

test("small text helpers", () => {
  assert.equal(pct(12.345), "12.3%");
  assert.equal(pct(100), "100%");
  assert.equal(pct(null), "-");
  assert.equal(pct(undefined), "-");
  assert.equal(pct(Number.NaN), "-");
  assert.equal(truncate("fraud-scoring-service", 10), "fraud-sco…");
  assert.equal(truncate("short", 10), "short");
  assert.equal(nodeSubtitle(GRAPH.nodes[1]), "rev 2 · passthrough");
  assert.equal(nodeSubtitle(GRAPH.nodes[4]), "4 calls · 25% err");
  assert.equal(nodeSubtitle(GRAPH.nodes[3]), "0 calls");
});
