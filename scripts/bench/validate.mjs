#!/usr/bin/env node
// By-hand micro-benchmark of the generated FHIR R4 validator (not a test).
// Usage: node scripts/build-validators.mjs && node scripts/bench/validate.mjs [seconds] [examples-dir]
// Reports module load time, then resources/s on the HL7 R4 examples: valid as shipped,
// without the large Bundles, and with one unknown element added (the error path).
// examples-dir: a folder of <Type>/*.json; by default the subset in test/fixtures/data/r4-examples.

import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const validatorsPath = fileURLToPath(new URL('../../generated/fhir-validators.cjs', import.meta.url));
const seconds = Number(process.argv[2] ?? 3);
const examplesDir = process.argv[3] ?? fileURLToPath(new URL('../../test/fixtures/data/r4-examples', import.meta.url));

if (!existsSync(validatorsPath)) {
  console.error(`${validatorsPath} is missing: run \`npm run build:validators\` first`);
  process.exit(1);
}

// Measure the require alone: this is what server start-up pays.
const t0 = performance.now();
const validate = createRequire(import.meta.url)(validatorsPath);
const loadMs = performance.now() - t0;

const files = readdirSync(examplesDir, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.json'))
  .map((f) => join(examplesDir, f));
const valid = files.map((f) => JSON.parse(readFileSync(f, 'utf8')));
// Bundles are a few large documents (up to 250 kB) and dominate the total.
const notBundles = valid.filter((r) => r.resourceType !== 'Bundle');
const invalid = valid.map((r) => ({ ...r, carnetBogusElement: true }));

const failing = valid.filter((r) => !validate(r));
if (failing.length > 0) console.warn(`warning: ${failing.length} example(s) do not validate`);

function run(resources, label) {
  for (let i = 0; i < 3; i++) for (const r of resources) validate(r); // warm-up for the JIT
  let count = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline) {
    for (const r of resources) validate(r);
    count += resources.length;
  }
  const elapsed = (performance.now() - start) / 1000;
  console.log(`${label.padEnd(28)} ${Math.round(count / elapsed).toLocaleString('en-US').padStart(10)} resources/s (${count} in ${elapsed.toFixed(1)} s)`);
}

console.log(`generated module: ${(statSync(validatorsPath).size / 1e6).toFixed(1)} MB, require() took ${loadMs.toFixed(0)} ms`);
console.log(`examples: ${valid.length} resources from ${examplesDir}, ${seconds} s per run, node ${process.version}`);
run(valid, 'valid examples');
run(notBundles, `valid, without ${valid.length - notBundles.length} Bundles`);
run(invalid, 'with one unknown element');
