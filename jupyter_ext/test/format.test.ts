// The sidebar's pure helpers: `jlpm test` (tsc -p tsconfig.test.json, then node --test).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import {
  connectCall,
  dashboardCode,
  describeRevision,
  earlierRevisions,
  formatAge,
  formatShadow,
  formatWeights,
  healthOf,
  healthTitle,
  MISSING_EXTENSION,
  plural,
  pythonString,
  rollbackSummary,
  SEGMENT_COLOURS,
  weightSegments
} from '../src/format';

test('weights read in route order with a middle dot', () => {
  assert.equal(formatWeights({ 'fraud:1': 90, 'fraud:2': 10 }), 'fraud:1 90% · fraud:2 10%');
  assert.equal(formatWeights({}), 'no routes');
});

test('bar segments keep route order, zero weights and cycle the colours', () => {
  const weights: Record<string, number> = {};
  for (let i = 0; i < SEGMENT_COLOURS + 1; i++) {
    weights[`m:${i}`] = i === 0 ? 0 : 10;
  }
  const segments = weightSegments(weights);
  assert.equal(segments.length, SEGMENT_COLOURS + 1);
  assert.deepEqual(segments[0], { ref: 'm:0', percent: 0, colour: 0 });
  assert.equal(segments[SEGMENT_COLOURS].colour, 0);
});

test('the shadow line and the health of a dot', () => {
  assert.equal(formatShadow({ ref: 'fraud:3', percent: 10 }), 'shadow fraud:3 10%');
  assert.equal(formatShadow(null), '');
  assert.equal(healthOf('warn'), 'warn');
  assert.equal(healthOf('degraded'), 'unknown');
  assert.equal(healthOf(undefined), 'unknown');
  assert.equal(healthTitle('error', 'error rate 40.0%'), 'error: error rate 40.0%');
  assert.equal(healthTitle('ok', ''), 'ok');
  assert.equal(plural(1, 'alert'), '1 alert');
  assert.equal(plural(3, 'alert'), '3 alerts');
});

test('ages are relative, then a date; unreadable times are blank', () => {
  const now = Date.parse('2024-05-10T12:00:00Z');
  assert.equal(formatAge('2024-05-10T11:59:50Z', now), 'just now');
  assert.equal(formatAge('2024-05-10T11:55:00Z', now), '5 min ago');
  assert.equal(formatAge('2024-05-10T09:00:00+00:00', now), '3 h ago');
  assert.equal(formatAge('2024-05-08T12:00:00Z', now), '2 d ago');
  assert.equal(formatAge('2024-04-01T12:00:00Z', now), '2024-04-01');
  assert.equal(formatAge('', now), '');
  assert.equal(formatAge('not a time', now), '');
});

const history = [1, 2, 3, 4].map(revision => ({
  revision,
  action: revision === 1 ? 'create' : 'apply',
  author: 'ana',
  createdAt: '2024-05-10T11:55:00Z',
  message: revision === 3 ? 'canary 5%' : '',
  changes: ''
}));

test('one can roll back to the revisions before the current one, newest first', () => {
  assert.deepEqual(
    earlierRevisions(history, 3).map(r => r.revision),
    [2, 1]
  );
  assert.deepEqual(earlierRevisions(history, 1), []);
  const now = Date.parse('2024-05-10T12:00:00Z');
  assert.equal(describeRevision(history[2], now), 'r3 · apply · ana · 5 min ago · canary 5%');
  assert.equal(describeRevision(history[0], now), 'r1 · create · ana · 5 min ago');
});

test('the dashboard cell gets the overlay by name and runs with the real constructor', () => {
  assert.equal(
    dashboardCode('fraud-check'),
    'from overlay_sdk.widgets import Dashboard\nimport overlay_sdk as ov\n\n' +
      'Dashboard(ov.connect().overlays.get("fraud-check"))'
  );
  assert.equal(
    dashboardCode('fraud-check', '/home/ana/.overlay'),
    'from overlay_sdk.widgets import Dashboard\nimport overlay_sdk as ov\n\n' +
      'Dashboard(ov.connect("/home/ana/.overlay").overlays.get("fraud-check"))'
  );
  assert.match(
    dashboardCode('a"b', ' k8s://kind/ns '),
    /Dashboard\(ov\.connect\("k8s:\/\/kind\/ns"\)\.overlays\.get\("a\\"b"\)\)$/
  );
});

test('a cluster address gets the registry URI, a home folder does not', () => {
  assert.equal(
    connectCall('k8s://kind/ml', 'http://mlflow.mlops:5000'),
    'ov.connect("k8s://kind/ml", registry_uri="http://mlflow.mlops:5000")'
  );
  assert.equal(
    connectCall('K8S:///ml', 'http://mlflow:5000'),
    'ov.connect("K8S:///ml", registry_uri="http://mlflow:5000")'
  );
  assert.equal(connectCall('k8s://kind/ml', null), 'ov.connect("k8s://kind/ml")');
  assert.equal(connectCall('k8s://kind/ml', '  '), 'ov.connect("k8s://kind/ml")');
  assert.equal(connectCall('/srv/home', 'sqlite:////srv/home/mlflow.db'), 'ov.connect("/srv/home")');
  assert.equal(connectCall('', 'http://mlflow:5000'), 'ov.connect()');
  assert.equal(connectCall('  ', null), 'ov.connect()');
});

test('a masked registry secret is pointed out in the cell', () => {
  const code = dashboardCode('x', 'k8s://kind/ml', 'http://ana:***@mlflow:5000');
  assert.match(code, /^# the server masked the registry URI's secrets \(\*\*\*\)/m);
  assert.match(code, /registry_uri="http:\/\/ana:\*\*\*@mlflow:5000"/);
  assert.doesNotMatch(dashboardCode('x', '/srv/home', 'postgresql://a:***@db/x'), /masked/);
});

// Strings that break naive quoting: quotes of both kinds, backslashes (Windows paths, a
// trailing one), newlines, control characters, non-ASCII, the line separators Python's
// str.splitlines breaks at, a lone surrogate, and Python's own escape syntax.
const AWKWARD = [
  'C:\\Users\\ana\\overlay home\\',
  `it's "quoted"`,
  'line\nbreak\r\tand\u0000nul\u000b\u000c\u001c',
  'ünïcödé 数据 🚀',
  'sep\u0085\u2028\u2029end',
  'lone \ud800 surrogate',
  '\\N{BULLET} \\x41 \\101 {braces} %s',
  "'''\"\"\""
];

test('Python string literals escape what JSON leaves raw', () => {
  assert.equal(pythonString('a\u2028b'), '"a\\u2028b"');
  assert.equal(pythonString('a\u0085b'), '"a\\u0085b"');
  assert.equal(pythonString('C:\\x'), '"C:\\\\x"');
  for (const text of AWKWARD) {
    const literal = pythonString(text);
    assert.ok(!/[\n\r\u0085\u2028\u2029]/.test(literal), literal);
  }
});

test('Python reads the dashboard cell back exactly (ast)', t => {
  const python = process.env.PYTHON || 'python3';
  const cases = AWKWARD.map((text, i) => ({
    overlay: text,
    plane: i % 2 ? `k8s://${text}` : text,
    registry: `http://${text}`
  }));
  const input = JSON.stringify(
    cases.map(c => ({ ...c, code: dashboardCode(c.overlay, c.plane, c.registry) }))
  );
  const script = [
    'import ast, json, sys',
    'out = []',
    'for case in json.loads(sys.stdin.read()):',
    '    code = case["code"]',
    '    tree = ast.parse(code)',
    '    call = tree.body[-1].value',
    '    get = call.args[0]',
    '    connect = get.func.value.value',
    '    out.append({"lines": len(code.splitlines()),',
    '                "overlay": get.args[0].value,',
    '                "plane": connect.args[0].value,',
    '                "registry": {k.arg: k.value.value for k in connect.keywords}.get("registry_uri")})',
    'sys.stdout.write(json.dumps(out))'
  ].join('\n');
  const run = spawnSync(python, ['-c', script], { input, encoding: 'utf8' });
  if (run.error) {
    t.skip(`${python} is not available: ${run.error.message}`);
    return;
  }
  assert.equal(run.status, 0, run.stderr);
  const parsed = JSON.parse(run.stdout);
  cases.forEach((c, i) => {
    const expectRegistry = i % 2 ? c.registry : null;
    assert.deepEqual(
      parsed[i],
      { lines: 4, overlay: c.overlay, plane: c.plane, registry: expectRegistry },
      JSON.stringify(c)
    );
  });
});

test('the rollback summary names the new revision and its weights', () => {
  const overlay = { revision: 5, weights: { 'fraud:1': 100 } };
  assert.equal(
    rollbackSummary('fraud-check', 2, overlay),
    'Rolled back fraud-check to r2: now revision 5 (fraud:1 100%)'
  );
  assert.match(rollbackSummary('x', null, overlay), /to the previous revision: now revision 5/);
});

test('the missing-extension message says what to run', () => {
  assert.match(MISSING_EXTENSION, /jupyter server extension enable overlay_sdk\.jupyter/);
  assert.match(MISSING_EXTENSION, /restart JupyterLab/);
});
