// SVG charts of the mix bench's results (docs/perf/mix-*.json), with vega-lite: throughput and p99
// latency per kind against the number of documents (one process) and against processes (at the
// largest data size measured). `node scripts/bench/charts.mjs [dir]` redraws them.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import * as vl from 'vega-lite';

async function svgOf(spec) {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

function line(title, rows, x, y, yTitle, xTitle, logX) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 300,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: x, type: 'quantitative', title: xTitle, ...(logX ? { scale: { type: 'log' } } : {}) },
      y: { field: y, type: 'quantitative', title: yTitle },
      color: { field: 'kind', type: 'nominal', title: 'kind' },
    },
  };
}

/** Reads every mix result of `dir` and writes its charts there; answers the files written. */
export async function writeCharts(dir) {
  const results = fs.readdirSync(dir).filter((f) => /^mix-\d+-\d+p\.json$/.test(f)).map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  const rows = results.flatMap((r) => r.kinds.map((k) => ({ ...k, documents: r.documents, processes: r.processes })));
  const one = rows.filter((r) => r.processes === 1);
  const largest = Math.max(...results.map((r) => r.documents));
  const atLargest = rows.filter((r) => r.documents === largest);
  const charts = [
    ['mix-throughput-by-documents.svg', line('Requests/s per kind against documents (1 process)', one, 'documents', 'rps', 'requests/s', 'documents', true)],
    ['mix-p99-by-documents.svg', line('p99 latency per kind against documents (1 process)', one, 'documents', 'p99', 'p99 (ms)', 'documents', true)],
    ['mix-throughput-by-processes.svg', line(`Requests/s per kind against processes (${largest} documents)`, atLargest, 'processes', 'rps', 'requests/s', 'processes (CARNET_WORKERS)', false)],
    ['mix-p99-by-processes.svg', line(`p99 latency per kind against processes (${largest} documents)`, atLargest, 'processes', 'p99', 'p99 (ms)', 'processes (CARNET_WORKERS)', false)],
  ];
  const written = [];
  for (const [file, spec] of charts) {
    if (spec.data.values.length === 0) continue;
    const target = path.join(dir, file);
    fs.writeFileSync(target, await svgOf(spec));
    written.push(target);
  }
  return written;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/perf');
  for (const file of await writeCharts(dir)) console.log(`wrote ${file}`);
}
