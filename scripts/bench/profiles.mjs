#!/usr/bin/env node
// By-hand micro-benchmark of the profile validator (not a test).
// Usage: npm run build && node scripts/bench/profiles.mjs [seconds]
// The examples are read from test/fixtures/data, or from CARNET_FIXTURE_DATA (same layout).
// Reports the load of profiles/ (what start-up pays), then resources/s validated against the
// MHD Comprehensive DocumentReference, the PDSm one, the MHD Minimal SubmissionSet and the ITI-65
// Comprehensive Provide Bundle, on the official examples as shipped and with errors.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const compiled = fileURLToPath(new URL('../../dist/fhir/profiles.js', import.meta.url));
if (!existsSync(compiled)) {
  console.error(`${compiled} is missing: run \`npm run build\` first`);
  process.exit(1);
}
const seconds = Number(process.argv[2] ?? 3);
const data = process.env.CARNET_FIXTURE_DATA ?? fileURLToPath(new URL('../../test/fixtures/data', import.meta.url));
const read = (file) => JSON.parse(readFileSync(`${data}/${file}`, 'utf8'));

const { loadProfiles } = await import(compiled);
const t0 = performance.now();
const registry = loadProfiles();
const loadMs = performance.now() - t0;

const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/';
const PDSM = 'https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/';
const comprehensive = read('mhd/DocumentReference-ex-DocumentReferenceComprehensive.json');
const broken = { ...comprehensive, status: 'entered-in-error', identifier: [comprehensive.identifier[0], { ...comprehensive.identifier[1], value: 'x' }] };
delete broken.masterIdentifier;
const runs = [
  ['MHD Comprehensive DocumentReference', `${MHD}IHE.MHD.Comprehensive.DocumentReference`, comprehensive],
  ['  same, with 3 errors', `${MHD}IHE.MHD.Comprehensive.DocumentReference`, broken],
  ['PDSm comprehensive DocumentReference', `${PDSM}pdsm-comprehensive-document-reference`, read('fr/pdsm/examples/DocumentReference-exemple-pdsm-documentreference.json')],
  ['MHD Minimal SubmissionSet', `${MHD}IHE.MHD.Minimal.SubmissionSet`, read('mhd/List-ex-minimalSubmissionSet.json')],
  ['MHD Comprehensive ProvideBundle (3 entries)', `${MHD}IHE.MHD.Comprehensive.ProvideBundle`, read('mhd/Bundle-ex-comprehensiveProvideDocumentBundleSimple.json')],
];

function run(label, url, resource) {
  const errors = registry.validateProfile(resource, url).filter((i) => i.severity !== 'warning').length;
  for (let i = 0; i < 200; i++) registry.validateProfile(resource, url); // warm-up: JIT, FHIRPath compilation
  let count = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) registry.validateProfile(resource, url);
    count += 100;
  }
  const elapsed = (performance.now() - start) / 1000;
  console.log(`${label.padEnd(44)} ${Math.round(count / elapsed).toLocaleString('en-US').padStart(8)} resources/s (${count} in ${elapsed.toFixed(1)} s, ${errors} errors each)`);
}

console.log(`profiles/ loaded in ${loadMs.toFixed(0)} ms (${registry.resourceProfiles().length} resource profiles), ${seconds} s per run, node ${process.version}`);
for (const [label, url, resource] of runs) run(label, url, resource);
