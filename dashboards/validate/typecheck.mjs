#!/usr/bin/env node
// Type-checks every dashboards/*.json against @grafana/schema (see types.ts).
//
// For each dashboard it writes build/<name>.json.ts: the JSON text as an object
// literal (JSON is valid TypeScript) with the import on the same first line, so
// line numbers in tsc's messages are line numbers in the JSON file. Then runs
// tsc. Exits non-zero on any type error.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dashboardsDir = join(here, '..');
const buildDir = join(here, 'build');
rmSync(buildDir, { recursive: true, force: true });
mkdirSync(buildDir);

const files = readdirSync(dashboardsDir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no dashboards found in ${dashboardsDir}`);
  process.exit(1);
}
for (const f of files) {
  const text = readFileSync(join(dashboardsDir, f), 'utf8').trimEnd();
  JSON.parse(text); // fail early, with a clear message, on invalid JSON
  const ts =
    `import type { Dashboard, FacetrainDashboard, Json } from '../types'; const dashboard = ${text} satisfies Json<FacetrainDashboard>;\n` +
    `// The strict profile must also be a valid dashboard for the core schema.\n` +
    `dashboard satisfies Json<Dashboard>;\n`;
  writeFileSync(join(buildDir, `${f}.ts`), ts);
}

const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json'), '--pretty', 'false'], {
  encoding: 'utf8',
});
// Point messages at the JSON files: build/x.json.ts(L,C) -> dashboards/x.json(L,C).
const out = (r.stdout + r.stderr).replace(/(?:[^\s(]*\/)?build\/([\w.-]+\.json)\.ts/g, (_, name) =>
  relative(process.cwd(), join(dashboardsDir, name)),
);
if (out.trim()) process.stdout.write(out);
if (r.status !== 0) {
  console.error(`typecheck: FAILED (${files.length} dashboards)`);
  process.exit(r.status ?? 1);
}
console.log(`typecheck: ${files.length} dashboards OK against @grafana/schema (${files.join(', ')})`);
