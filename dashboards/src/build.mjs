#!/usr/bin/env node
// Writes dashboards/<uid>.json from the sources in this directory, and the
// panel list in dashboards/README.md.
//   node dashboards/src/build.mjs          regenerate the JSON files
//   node dashboards/src/build.mjs --check  exit 1 if a committed file differs
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import training from './training.mjs';
import reliability from './reliability.mjs';
import rpc from './rpc.mjs';

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
let drift = 0;

for (const d of [training, reliability, rpc]) {
  const file = join(outDir, `${d.uid}.json`);
  const text = JSON.stringify(d, null, 2) + '\n';
  const rel = relative(process.cwd(), file);
  if (check) {
    if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
      console.error(`${rel}: differs from dashboards/src (run: node dashboards/src/build.mjs)`);
      drift++;
    }
  } else {
    writeFileSync(file, text);
    console.log(`wrote ${rel}`);
  }
}
// The panel list in dashboards/README.md, between the panels:begin/end markers.
function panelDocs(dashboards) {
  const out = [];
  for (const d of dashboards) {
    out.push(`### ${d.title} (\`${d.uid}\`)`, '');
    out.push(d.description, '');
    const vars = d.templating.list.map((v) => `\`$${v.name}\``).join(', ');
    out.push(`Variables: ${vars}. Default time range: ${d.time.from} to ${d.time.to}.`, '');
    for (const p of d.panels) {
      if (p.type === 'row') {
        out.push(`#### ${p.title}`, '');
        continue;
      }
      out.push(`- **${p.title}** (${p.type}): ${p.description}`);
      for (const t of p.targets) {
        const legend = t.legendFormat && t.legendFormat !== '__auto' ? `, legend \`${t.legendFormat}\`` : '';
        out.push('', `  ${t.refId} (${t.instant ? 'instant' : 'range'}${legend}):`, '', '  ```promql');
        for (const line of t.expr.split('\n')) out.push(`  ${line}`);
        out.push('  ```');
      }
      out.push('');
    }
  }
  return out.join('\n');
}

const readme = join(outDir, 'README.md');
const BEGIN = '<!-- panels:begin -->';
const END = '<!-- panels:end -->';
const current = readFileSync(readme, 'utf8');
const b = current.indexOf(BEGIN);
const e = current.indexOf(END);
if (b < 0 || e < b) {
  console.error(`${relative(process.cwd(), readme)}: missing ${BEGIN} ... ${END} markers`);
  process.exit(1);
}
const updated = current.slice(0, b + BEGIN.length) + '\n' + panelDocs([training, reliability, rpc]) + '\n' + current.slice(e);
if (check) {
  if (updated !== current) {
    console.error(`${relative(process.cwd(), readme)}: panel list differs from dashboards/src (run: node dashboards/src/build.mjs)`);
    drift++;
  }
} else if (updated !== current) {
  writeFileSync(readme, updated);
  console.log(`wrote ${relative(process.cwd(), readme)} (panel list)`);
}

if (drift) process.exit(1);
if (check) console.log('dashboards: JSON and README panel list match dashboards/src');
