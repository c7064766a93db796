#!/usr/bin/env node
// Smoke test: a real Prometheus server scrapes a synthetic facetrain exporter
// (coordinator + 2 workers, on 127.0.0.1) with dashboards/rules loaded; then
// every dashboard query and every rule must evaluate without error, and every
// dashboard query must return data. Catches what parsing cannot: runtime
// errors (e.g. many-to-many matching in group_left), label selectors that
// match nothing, a rule that fails at evaluation.
//
//   node dashboards/validate/smoke.mjs [seconds to scrape, default 45]
//
// Needs the `prometheus` binary (Debian package prometheus, as for promtool).
// Talks only to 127.0.0.1; stops the server it started.
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const seconds = Number(process.argv[2] ?? 45);
const T0 = Date.now() / 1000;
const JOBS = ['j-7f3a', 'j-11aa'];

// ---------------------------------------------------------------------------
// Synthetic exporter: every metric of METRICS.md with plausible, growing values.

function hist(name, labels, n, mean, buckets) {
  const sep = labels ? `${labels},` : '';
  const out = buckets.map((le) => `${name}_bucket{${sep}le="${le}"} ${Math.floor(n * Math.min(1, le / (2 * mean)))}`);
  out.push(`${name}_bucket{${sep}le="+Inf"} ${n}`);
  const braces = labels ? `{${labels}}` : '';
  out.push(`${name}_sum${braces} ${n * mean}`, `${name}_count${braces} ${n}`);
  return out;
}

function coordinator() {
  const t = Date.now() / 1000 - T0;
  const n = Math.floor(t * 10);
  const L = ['facetrain_build_info{version="0.0.0-smoke",component="coordinator"} 1'];
  for (const [s, v] of Object.entries({ queued: 1, running: 2, succeeded: 3, failed: 0, cancelled: 1 })) L.push(`facetrain_jobs{state="${s}"} ${v}`);
  for (const [s, v] of Object.entries({ idle: 1, training: 4, lost: 0 })) L.push(`facetrain_workers{state="${s}"} ${v}`);
  for (const j of JOBS) {
    const jl = `job_id="${j}"`;
    L.push(
      `facetrain_job_step{${jl}} ${n}`,
      `facetrain_job_running_seconds_total{${jl}} ${t}`,
      `facetrain_samples_total{${jl}} ${n * 64}`,
      `facetrain_loss{${jl}} ${1 / (1 + t)}`,
      `facetrain_accuracy_ratio{${jl},split="train"} 0.8`,
      `facetrain_accuracy_ratio{${jl},split="validate"} 0.75`,
      `facetrain_reduce_bytes_total{${jl},strategy="coordinator"} ${n * 1e6}`,
      `facetrain_incidents_open{${jl}} 0`,
      `facetrain_lost_work_seconds_total{${jl}} ${n / 10}`,
      `facetrain_last_checkpoint_timestamp_seconds{${jl}} ${T0}`,
    );
    for (const ph of ['total', 'reduce']) L.push(...hist('facetrain_step_duration_seconds', `${jl},phase="${ph}"`, n, 0.4, [0.1, 0.25, 0.5, 1, 2]));
    for (let w = 0; w < 4; w++) L.push(`facetrain_worker_step_compute_seconds{${jl},worker="w${w}"} ${0.3 + 0.1 * w}`);
    for (const c of ['worker_lost', 'bad_data']) {
      for (const r of ['automation', 'person']) L.push(`facetrain_incidents_total{${jl},cause="${c}",resolved_by="${r}"} ${Math.floor(n / 50)}`);
    }
  }
  for (const c of ['worker_lost', 'bad_data']) L.push(...hist('facetrain_recovery_duration_seconds', `cause="${c}"`, Math.floor(n / 50), 30, [1, 10, 60, 600]));
  for (const k of ['cancel', 'restart']) {
    L.push(`facetrain_toil_events_total{kind="${k}"} ${Math.floor(n / 100)}`, `facetrain_toil_seconds_total{kind="${k}"} ${Math.floor(n / 10)}`);
  }
  L.push(...hist('facetrain_checkpoint_duration_seconds', '', Math.floor(n / 20), 2, [1, 5, 30]));
  L.push(`facetrain_checkpoint_failures_total ${Math.floor(n / 200)}`);
  for (const rpc of ['Heartbeat', 'ReportStep']) {
    for (const [code, f] of [['OK', 1], ['Unavailable', 0.01], ['InvalidArgument', 0.05]]) {
      L.push(`facetrain_grpc_requests_total{rpc="${rpc}",code="${code}"} ${Math.floor(n * f * 10)}`);
    }
    L.push(...hist('facetrain_grpc_request_duration_seconds', `rpc="${rpc}"`, n * 10, 0.01, [0.005, 0.01, 0.05, 0.1]));
  }
  return L;
}

function worker(i) {
  const n = Math.floor((Date.now() / 1000 - T0) * 10);
  const L = [
    'facetrain_build_info{version="0.0.0-smoke",component="worker"} 1',
    `facetrain_pipeline_images_total ${n * 64}`,
    `facetrain_pipeline_queue_depth ${i + 2}`,
  ];
  for (const j of JOBS) {
    const jl = `job_id="${j}"`;
    L.push(`facetrain_samples_total{${jl}} ${n * 16}`, `facetrain_reduce_bytes_total{${jl},strategy="coordinator"} ${n * 2.5e5}`);
    for (const ph of ['data', 'compute', 'reduce', 'apply']) L.push(...hist('facetrain_step_duration_seconds', `${jl},phase="${ph}"`, n, 0.1, [0.05, 0.1, 0.25, 0.5]));
  }
  return L;
}

function serve(render) {
  return new Promise((ok) => {
    const s = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(render().join('\n') + '\n');
    });
    s.listen(0, '127.0.0.1', () => ok(s));
  });
}

const freePort = () =>
  new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------

const servers = [await serve(coordinator), await serve(() => worker(0)), await serve(() => worker(1))];
const addr = (s) => `127.0.0.1:${s.address().port}`;
const promPort = await freePort();
const work = mkdtempSync(join(tmpdir(), 'facetrain-smoke-'));
const rules = readdirSync(join(root, 'rules')).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(root, 'rules', f));
writeFileSync(join(work, 'prometheus.yml'), `
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ${JSON.stringify(rules)}
scrape_configs:
  - job_name: facetrain-coordinator
    static_configs: [{targets: ['${addr(servers[0])}']}]
  - job_name: facetrain-worker
    static_configs: [{targets: ['${addr(servers[1])}', '${addr(servers[2])}']}]
`);
const prom = spawn('prometheus', [
  `--config.file=${join(work, 'prometheus.yml')}`,
  `--storage.tsdb.path=${join(work, 'data')}`,
  `--web.listen-address=127.0.0.1:${promPort}`,
], { stdio: ['ignore', 'ignore', 'pipe'] });
let promLog = '';
prom.stderr.on('data', (b) => (promLog += b));
const spawned = new Promise((ok, fail) => {
  prom.on('spawn', ok);
  prom.on('error', fail);
});

let failures = 0;
let checks = 0;
try {
  await spawned;
  console.log(`smoke: prometheus on 127.0.0.1:${promPort}, scraping for ${seconds}s`);
  await sleep(seconds * 1000);
  const api = async (path, params = {}) =>
    (await fetch(`http://127.0.0.1:${promPort}/api/v1/${path}?${new URLSearchParams(params)}`)).json();

  // Queries that need more history than a smoke run has.
  const needsHistory = /p95_rate5m_baseline1d/;
  let n = 0;
  for (const f of readdirSync(root).filter((f) => f.endsWith('.json')).sort()) {
    const d = JSON.parse(readFileSync(join(root, f), 'utf8'));
    for (const p of d.panels) {
      for (const t of p.targets ?? []) {
        n++;
        checks++;
        const expr = t.expr
          .replaceAll('$__rate_interval', '15s')
          .replaceAll('$__range', '1m')
          .replace(/\$\{?(\w+)\}?/g, '.*');
        const r = await api('query', { query: expr });
        let problem = null;
        if (r.status !== 'success') problem = r.error;
        else if (r.data.result.length === 0 && !needsHistory.test(expr)) problem = 'no data';
        if (problem) {
          failures++;
          console.log(`FAIL ${d.uid} panel "${p.title}" ${t.refId}: ${problem}\n     ${expr.replaceAll('\n', ' ')}`);
        }
      }
    }
  }
  const rulesResp = await api('rules');
  let nRules = 0;
  for (const g of rulesResp.data.groups) {
    for (const r of g.rules) {
      nRules++;
      checks++;
      if (r.health !== 'ok') {
        failures++;
        console.log(`FAIL rule ${r.name}: ${r.health} ${r.lastError ?? ''}`);
      }
    }
  }
  console.log(`smoke: ${n} dashboard queries, ${nRules} rules evaluated`);
} catch (e) {
  failures++;
  console.log(`FAIL ${e.message}\n${promLog.slice(-2000)}`);
} finally {
  prom.kill('SIGTERM');
  await new Promise((ok) => (prom.exitCode !== null ? ok() : prom.on('exit', ok)));
  for (const s of servers) s.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(`smoke: ${Math.max(0, checks - failures)} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
