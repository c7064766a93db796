#!/usr/bin/env node
// Lints the facetrain dashboards and rules beyond what the schema and promtool
// check, and lists the metric names they reference.
//
//   node lint.mjs                      lint; exit 1 on any error
//   node lint.mjs --list-metrics       print referenced metric names, one per line
//   node lint.mjs --write-metrics      rewrite dashboards/metrics.txt
//   node lint.mjs --emit-promql-rules F  also write every dashboard query as a
//                                      recording rule to F, for `promtool check rules`
//
// Dashboard checks:
//   - uids are the pinned, stable set below and each file is named <uid>.json
//   - panel ids unique per dashboard; schemaVersion as in dashboards/src/lib.mjs
//   - every panel, target, query variable and Prometheus annotation uses the
//     ${datasource} variable; a datasource variable of type prometheus exists
//   - every $variable used in a query is defined (or a Grafana built-in)
//   - every query parses as PromQL
//   - every rate()/increase() (and every other range-vector function) uses
//     [$__rate_interval]; [$__range] is accepted only in instant queries, for
//     "total over the selected time range" stat/bar gauge/table panels
// Rule checks:
//   - every alert has severity critical|warning|info, summary, description,
//     runbook, and runbook_url docs/operations.md#<lowercase alert name>
//   - every alert has a promtool test where it fires and one where it does not;
//     every recording rule is evaluated by some promql_expr_test
//   - gRPC error code regexes are the same everywhere
// Both:
//   - every referenced metric is documented in dashboards/METRICS.md
//   - dashboards/metrics.txt is up to date
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import YAML from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..'); // dashboards/
const rel = (p) => relative(process.cwd(), p) || '.';

const EXPECTED_UIDS = ['facetrain-reliability', 'facetrain-rpc', 'facetrain-training'];
const GRAFANA_BUILTIN_VARS = new Set([
  '__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms',
  '__from', '__to', '__dashboard', '__org', '__user', '__name', '__all',
]);
// Produced by Prometheus itself, not exported by facetrain.
const PROMETHEUS_SYNTHETIC = new Set(['up', 'ALERTS', 'ALERTS_FOR_STATE']);
const isSynthetic = (m) => PROMETHEUS_SYNTHETIC.has(m) || m.startsWith('scrape_');

const args = process.argv.slice(2);
const listOnly = args.includes('--list-metrics');
const writeMetrics = args.includes('--write-metrics');
const emitIdx = args.indexOf('--emit-promql-rules');
const emitFile = emitIdx >= 0 ? args[emitIdx + 1] : null;

const errors = [];
const err = (where, msg) => errors.push(`${where}: ${msg}`);

// ---------------------------------------------------------------------------
// PromQL helpers

// Grafana range variables are replaced by sentinel durations before parsing,
// so the parse tree still tells which variable a range selector used.
const SENTINELS = { __rate_interval: '4242s', __range: '4343s', __interval: '4141s' };
const SENTINEL_NAMES = Object.fromEntries(Object.entries(SENTINELS).map(([k, v]) => [v, `$${k}`]));

function substituteGrafana(expr) {
  let out = expr;
  for (const [name, dur] of Object.entries(SENTINELS)) {
    out = out.replaceAll(`\${${name}}`, dur).replaceAll(`$${name}`, dur);
  }
  return out;
}

/** Grafana variables referenced anywhere in an expression (outside of the range sentinels). */
function variablesIn(expr) {
  const names = new Set();
  for (const m of expr.matchAll(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g)) names.add(m[1] ?? m[2]);
  return names;
}

/**
 * Parse a PromQL expression. Returns { ok, metrics: Set, ranges: [{fn, range}] }
 * where ranges lists every range selector / subquery with the function applied to it.
 */
function analyse(expr) {
  const tree = parser.parse(expr);
  const metrics = new Set();
  const ranges = [];
  let ok = true;
  const text = (n) => expr.slice(n.from, n.to);
  tree.iterate({
    enter(ref) {
      const n = ref.node;
      if (n.type.isError) ok = false;
      if (n.name === 'VectorSelector') {
        const id = n.getChild('Identifier');
        if (id) metrics.add(text(id));
        // {__name__="x"} form
        const matchers = n.getChild('LabelMatchers');
        if (matchers) {
          for (const m of matchers.getChildren('UnquotedLabelMatcher')) {
            const ln = m.getChild('LabelName');
            const sl = m.getChild('StringLiteral');
            const op = m.getChild('MatchOp');
            if (ln && sl && op && text(ln) === '__name__' && text(op) === '=') metrics.add(text(sl).slice(1, -1));
          }
        }
      }
      if (n.name === 'MatrixSelector' || n.name === 'SubqueryExpr') {
        const t = text(n);
        const range = (t.match(/\[([^\]]*)\]\s*$/) ?? t.match(/\[([^\]:]*)/))?.[1]?.split(':')[0].trim() ?? '';
        let fn = null;
        let p = n.parent;
        while (p && p.name !== 'FunctionCall' && p.name !== 'PromQL') p = p.parent;
        if (p && p.name === 'FunctionCall') {
          const id = p.getChild('FunctionIdentifier');
          if (id) fn = text(id);
        }
        ranges.push({ fn, range, subquery: n.name === 'SubqueryExpr' });
      }
    },
  });
  return { ok, metrics, ranges };
}

// ---------------------------------------------------------------------------
// METRICS.md

const metricsDocPath = join(root, 'METRICS.md');
const documented = new Map(); // name -> type
for (const line of readFileSync(metricsDocPath, 'utf8').split('\n')) {
  const m = line.match(/^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|/);
  if (m) documented.set(m[1], m[2]);
}
if (documented.size === 0) err(rel(metricsDocPath), 'no metrics table found');

/** Base name of a referenced series name: histogram _bucket/_sum/_count -> histogram. */
function baseName(name) {
  const m = name.match(/^(.*)_(bucket|sum|count)$/);
  if (m && (documented.get(m[1]) === 'histogram' || m[2] === 'bucket')) return m[1];
  return name;
}

const referenced = new Map(); // base metric name -> Set(where)
function reference(name, where) {
  if (name.includes(':') || isSynthetic(name)) return;
  const base = baseName(name);
  if (!referenced.has(base)) referenced.set(base, new Set());
  referenced.get(base).add(where);
}

// ---------------------------------------------------------------------------
// Dashboards

const emitted = []; // { record, expr } for --emit-promql-rules
const dashboardFiles = readdirSync(root).filter((f) => f.endsWith('.json')).sort();
const seenUids = new Map();
const GRPC_CODES_RE = /code=~"([^"]+)"/g;
const grpcCodeSets = new Map(); // regex -> [where]
const noteCodes = (expr, where) => {
  for (const m of expr.matchAll(GRPC_CODES_RE)) {
    if (!grpcCodeSets.has(m[1])) grpcCodeSets.set(m[1], []);
    grpcCodeSets.get(m[1]).push(where);
  }
};

const schemaVersion = Number(
  readFileSync(join(root, 'src', 'lib.mjs'), 'utf8').match(/SCHEMA_VERSION = (\d+)/)?.[1],
);

const isDatasourceVar = (ds) => ds && ds.type === 'prometheus' && ds.uid === '${datasource}';

for (const file of dashboardFiles) {
  const path = join(root, file);
  const where = rel(path);
  let d;
  try {
    d = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    err(where, `invalid JSON: ${e.message}`);
    continue;
  }
  if (!d.uid || typeof d.uid !== 'string') {
    err(where, 'missing uid');
    continue;
  }
  if (file !== `${d.uid}.json`) err(where, `file must be named after its uid (${d.uid}.json)`);
  if (!EXPECTED_UIDS.includes(d.uid)) {
    err(where, `uid "${d.uid}" is not one of the pinned uids (${EXPECTED_UIDS.join(', ')}); uids are stable: links and bookmarks use them`);
  }
  if (!/^[a-z0-9-]{1,40}$/.test(d.uid)) err(where, `uid "${d.uid}" must be lowercase [a-z0-9-], at most 40 characters`);
  if (seenUids.has(d.uid)) err(where, `duplicate uid "${d.uid}" (also in ${seenUids.get(d.uid)})`);
  seenUids.set(d.uid, where);
  if (d.id !== null) err(where, 'id must be null (Grafana assigns it)');
  if (d.schemaVersion !== schemaVersion) err(where, `schemaVersion ${d.schemaVersion}, expected ${schemaVersion}`);

  const vars = d.templating?.list ?? [];
  const varNames = new Set(vars.map((v) => v.name));
  const dsVar = vars.find((v) => v.name === 'datasource');
  if (!dsVar || dsVar.type !== 'datasource' || dsVar.query !== 'prometheus') {
    err(where, 'needs a template variable "datasource" of type datasource, query "prometheus"');
  }

  const checkQuery = (expr, { instant, at }) => {
    if (typeof expr !== 'string' || !expr.trim()) {
      err(at, 'empty expr');
      return;
    }
    for (const v of variablesIn(expr)) {
      if (!varNames.has(v) && !GRAFANA_BUILTIN_VARS.has(v)) err(at, `uses undefined variable $${v}`);
    }
    const substituted = substituteGrafana(expr);
    const { ok, metrics, ranges } = analyse(substituted);
    if (!ok) err(at, `PromQL does not parse: ${expr}`);
    for (const m of metrics) reference(m, where);
    for (const { fn, range, subquery } of ranges) {
      const used = SENTINEL_NAMES[range] ?? `[${range}]`;
      if (subquery) {
        err(at, `subquery [${range}] not allowed in dashboards`);
      } else if (used === '$__rate_interval') {
        // always fine
      } else if (used === '$__range' && instant) {
        // whole selected range in an instant query: fine
      } else {
        err(at, `${fn ?? 'range selector'}(...[${used.startsWith('$') ? used : range}]) must use [$__rate_interval]` +
          (instant ? ' or [$__range]' : ' ($__range only in instant queries)'));
      }
    }
    noteCodes(expr, where);
    // For promtool: Grafana variables -> plain PromQL.
    const plain = expr
      .replaceAll('$__rate_interval', '5m')
      .replaceAll('$__range', '1h')
      .replaceAll('$__interval', '1m')
      .replace(/\$\{?(\w+)\}?/g, '.*');
    emitted.push({ record: `dashboard:${d.uid.replaceAll('-', '_')}:query${emitted.length}`, expr: plain });
  };

  // Panels (rows may nest panels when collapsed).
  const panels = [];
  for (const p of d.panels ?? []) {
    panels.push(p);
    for (const c of p.panels ?? []) panels.push(c);
  }
  const ids = new Set();
  for (const p of panels) {
    const at = `${where} panel ${p.id} "${p.title ?? ''}"`;
    if (typeof p.id !== 'number') err(at, 'panel without numeric id');
    else if (ids.has(p.id)) err(at, `duplicate panel id ${p.id}`);
    ids.add(p.id);
    if (p.type === 'row') continue;
    if (!p.title) err(at, 'panel without title');
    if (!p.description) err(at, 'panel without description');
    if (!isDatasourceVar(p.datasource)) err(at, 'panel datasource must be {type: prometheus, uid: ${datasource}}');
    const targets = p.targets ?? [];
    if (targets.length === 0) err(at, 'panel without targets');
    const refIds = new Set();
    for (const t of targets) {
      const tat = `${at} target ${t.refId}`;
      if (refIds.has(t.refId)) err(tat, 'duplicate refId');
      refIds.add(t.refId);
      if (!isDatasourceVar(t.datasource)) err(tat, 'target datasource must be {type: prometheus, uid: ${datasource}}');
      if (t.instant === t.range) err(tat, 'target must be exactly one of instant or range');
      checkQuery(t.expr, { instant: t.instant === true, at: tat });
    }
  }

  // Variables.
  for (const v of vars) {
    if (v.type !== 'query') continue;
    const at = `${where} variable $${v.name}`;
    if (!isDatasourceVar(v.datasource)) err(at, 'variable datasource must be {type: prometheus, uid: ${datasource}}');
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = q?.match(/^label_values\((.*),\s*(\w+)\)$/);
    if (!m) {
      err(at, `query must be label_values(<selector>, ${v.name}): ${q}`);
      continue;
    }
    if (m[2] !== v.name) err(at, `label_values() label ${m[2]} differs from the variable name`);
    checkQuery(m[1], { instant: true, at });
  }

  // Annotations.
  for (const a of d.annotations?.list ?? []) {
    if (a.builtIn === 1) continue;
    const at = `${where} annotation "${a.name}"`;
    if (!isDatasourceVar(a.datasource)) err(at, 'annotation datasource must be {type: prometheus, uid: ${datasource}}');
    if (!isDatasourceVar(a.target?.datasource)) err(at, 'annotation target datasource must be ${datasource}');
    checkQuery(a.target?.expr, { instant: false, at });
  }
}
for (const uid of EXPECTED_UIDS) {
  if (!seenUids.has(uid)) err(rel(root), `dashboard ${uid}.json is missing`);
}

// ---------------------------------------------------------------------------
// Rules and their tests

const rulesDir = join(root, 'rules');
const alerts = new Map(); // name -> [where]
const records = new Set();
for (const file of readdirSync(rulesDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const path = join(rulesDir, file);
  const where = rel(path);
  const doc = YAML.parse(readFileSync(path, 'utf8'));
  for (const g of doc?.groups ?? []) {
    for (const r of g.rules ?? []) {
      const name = r.alert ?? r.record;
      const at = `${where} ${r.alert ? 'alert' : 'record'} ${name}`;
      const { ok, metrics, ranges } = analyse(r.expr);
      if (!ok) err(at, 'PromQL does not parse');
      for (const m of metrics) reference(m, where);
      for (const { range } of ranges) {
        if (range.startsWith('$')) err(at, `Grafana variable ${range} in a rule`);
      }
      noteCodes(r.expr, where);
      if (r.record) {
        records.add(r.record);
        if (!/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/.test(r.record)) err(at, 'recording rule name must be level:metric:operations');
        continue;
      }
      if (!alerts.has(name)) alerts.set(name, []);
      alerts.get(name).push(at);
      if (!/^Facetrain[A-Z][A-Za-z]+$/.test(name)) err(at, 'alert name must be Facetrain<CamelCase>');
      if (!['critical', 'warning', 'info'].includes(r.labels?.severity)) err(at, 'severity label must be critical, warning or info');
      for (const a of ['summary', 'description', 'runbook', 'runbook_url']) {
        if (!r.annotations?.[a]) err(at, `missing annotation ${a}`);
      }
      const url = `docs/operations.md#${name.toLowerCase()}`;
      if (r.annotations?.runbook_url !== url) err(at, `runbook_url must be ${url}`);
      if (r.annotations?.runbook?.includes('\n')) err(at, 'runbook must be one line');
    }
  }
}

const testsDir = join(root, 'tests');
const fires = new Set();
const silent = new Set();
const evaluatedExprs = [];
for (const file of readdirSync(testsDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const doc = YAML.parse(readFileSync(join(testsDir, file), 'utf8'));
  for (const t of doc?.tests ?? []) {
    for (const a of t.alert_rule_test ?? []) {
      ((a.exp_alerts ?? []).length > 0 ? fires : silent).add(a.alertname);
    }
    for (const p of t.promql_expr_test ?? []) evaluatedExprs.push(p.expr);
  }
}
for (const [name, at] of alerts) {
  if (!fires.has(name)) err(at[0], 'no promtool test in dashboards/tests where it fires');
  if (!silent.has(name)) err(at[0], 'no promtool test in dashboards/tests where it does not fire');
}
for (const r of records) {
  const used = evaluatedExprs.some((e) => analyse(e).metrics.has(r));
  if (!used) err(`${rel(rulesDir)} record ${r}`, 'not evaluated by any promql_expr_test in dashboards/tests');
}

if (grpcCodeSets.size > 1) {
  err('gRPC error codes', `different code=~ regexes in use: ${[...grpcCodeSets.entries()]
    .map(([re, w]) => `"${re}" (${[...new Set(w)].join(', ')})`).join(' vs ')}`);
}

// ---------------------------------------------------------------------------
// Metric inventory

for (const [name, where] of referenced) {
  if (!documented.has(name)) err([...where].join(', '), `metric ${name} is not documented in ${rel(metricsDocPath)}`);
}
const unused = [...documented.keys()].filter((m) => !referenced.has(m));

const list = [...referenced.keys()].sort();
const listText = list.join('\n') + '\n';
const metricsTxt = join(root, 'metrics.txt');

if (listOnly) {
  process.stdout.write(listText);
  if (errors.length) {
    for (const e of errors) console.error(`error: ${e}`);
    process.exit(1);
  }
  process.exit(0);
}

if (writeMetrics) {
  writeFileSync(metricsTxt, listText);
  console.log(`wrote ${rel(metricsTxt)} (${list.length} metrics)`);
} else {
  let current = '';
  try {
    current = readFileSync(metricsTxt, 'utf8');
  } catch {}
  if (current !== listText) err(rel(metricsTxt), 'out of date (run: node dashboards/validate/lint.mjs --write-metrics)');
}

if (emitFile) {
  mkdirSync(dirname(resolve(emitFile)), { recursive: true });
  const doc = { groups: [{ name: 'dashboard-queries', rules: emitted }] };
  writeFileSync(emitFile, '# Generated by dashboards/validate/lint.mjs: every dashboard query, for promtool check rules.\n' + YAML.stringify(doc, { lineWidth: 0 }));
}

for (const m of unused) console.warn(`warning: ${m} is documented in METRICS.md but no dashboard or rule uses it`);
if (errors.length) {
  for (const e of errors) console.error(`error: ${e}`);
  console.error(`lint: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(
  `lint: OK (${dashboardFiles.length} dashboards, ${emitted.length} queries, ${alerts.size} alerts, ` +
  `${records.size} recording rules, ${list.length} metrics)`,
);
