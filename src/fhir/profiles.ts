// fhir/profiles: the profiles Carnet validates against: the StructureDefinitions, ValueSets and
// CodeSystems under profiles/ (official IHE MHD and ANS PDSm copies, and a few written here),
// loaded once. validateProfile() checks a resource against one; claimedProfileIssues() against
// those its meta.profile names. Knows nothing of HTTP or storage. See docs/profiles.md.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Resource, StructureDefinition } from '@medplum/fhirtypes';
import type { Issue } from '../base/outcome.js';
import { canonical, compileProfile, walk, R4_BASE, type CompiledProfile, type Discriminator, type ElementNode } from './profile-elements.js';
import { checkProfile, discriminatorsOf, type CheckEnv, type SliceKey } from './profile-check.js';
import { Terminology, type Expansion } from './terminology.js';
import { conformanceResources } from '../search/params.js';

export const PROFILES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../profiles');

export interface ProfileSummary {
  url: string;
  name: string;
  type: string;
}

export class ProfileRegistry implements CheckEnv {
  private readonly compiled = new Map<string, CompiledProfile>();
  private readonly terminology: Terminology;
  private readonly expansions = new Map<string, Expansion | undefined>();
  private readonly sliceKeys = new WeakMap<ElementNode, SliceKey[] | undefined>();
  /** What cannot be checked (a ValueSet not available locally, a slice that cannot be told apart), once each. */
  readonly notes: string[] = [];

  /**
   * `resources`: StructureDefinitions (constraints on resources, datatypes and extensions),
   * ValueSets and CodeSystems. Throws when a profile cannot be compiled (its base is missing...).
   */
  constructor(resources: Resource[]) {
    this.terminology = new Terminology(resources);
    const definitions = new Map<string, StructureDefinition>();
    for (const r of resources) {
      if (r.resourceType !== 'StructureDefinition' || r.derivation !== 'constraint' || !r.url) continue;
      definitions.set(canonical(r.url), r);
    }
    const compiling = new Set<string>();
    const compile = (url: string): CompiledProfile | undefined => {
      const done = this.compiled.get(url);
      if (done) return done;
      const sd = definitions.get(url);
      if (!sd) return undefined;
      if (compiling.has(url)) throw new Error(`profile ${url}: its baseDefinition chain loops`);
      compiling.add(url);
      try {
        const profile = compileProfile(sd, compile);
        this.compiled.set(url, profile);
        return profile;
      } catch (error) {
        throw new Error(`profile ${url}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    for (const url of definitions.keys()) compile(url);
    for (const profile of this.compiled.values()) this.review(profile);
  }

  /** Notes, at load, what the profile asks that Carnet cannot check. */
  private review(profile: CompiledProfile): void {
    for (const [node, label] of walk(profile.root)) {
      const binding = node.rule.binding?.value;
      if (binding?.strength === 'required' && binding.valueSet && !this.expansion(binding.valueSet)) {
        const outcome = this.terminology.expand(binding.valueSet);
        this.note(`${node.rule.binding!.from} ${label}: required binding not checked (${outcome.kind === 'unknown' ? outcome.reason : ''})`);
      }
      const discriminators = discriminatorsOf(node.rule, label.slice(label.lastIndexOf('.') + 1));
      for (const [sliceName, slice] of node.slices) {
        const from = slice.rule.types?.from ?? slice.rule.min?.from ?? profile.name;
        if (!discriminators || !this.sliceKey(slice, discriminators)) this.note(`${from} ${label}:${sliceName}: slice not checked (its discriminator ${JSON.stringify(discriminators ?? [])} cannot be evaluated here)`);
      }
      for (const invariant of node.rule.invariants) {
        if (!invariant.expression && invariant.from === profile.name) this.note(`${profile.name} ${label}: invariant ${invariant.key} not checked (it has no FHIRPath expression)`);
      }
      for (const type of node.rule.types?.value ?? []) {
        for (const url of type.profile) if (!url.startsWith(R4_BASE) && !this.compiled.has(url)) this.note(`${node.rule.types!.from} ${label}: type profile ${url} is not loaded, not checked`);
      }
    }
  }

  private note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  profile(url: string): CompiledProfile | undefined {
    return this.compiled.get(canonical(url));
  }

  expansion(url: string): Expansion | undefined {
    if (!this.expansions.has(url)) {
      const outcome = this.terminology.expand(url);
      this.expansions.set(url, outcome.kind === 'codes' ? outcome.codes : undefined);
    }
    return this.expansions.get(url);
  }

  sliceKey(slice: ElementNode, discriminators: Discriminator[]): SliceKey[] | undefined {
    if (this.sliceKeys.has(slice)) return this.sliceKeys.get(slice);
    const found = discriminators.map((d) => this.keyFor(slice, d));
    // A discriminator the slice leaves open (IHE's Documents entries take any method) matches
    // anything, as long as another one tells the slice apart.
    const keys = found.some((k) => k && k.kind !== 'any') ? found.filter((k): k is SliceKey => k !== undefined) : [];
    const result = keys.length === discriminators.length ? keys : undefined;
    this.sliceKeys.set(slice, result);
    return result;
  }

  /**
   * What a slice says its items hold at the discriminator's path: a fixed or pattern value, a
   * required binding, a type or profile, from the slice itself or from the profile of its type.
   */
  private keyFor(slice: ElementNode, d: Discriminator): SliceKey | undefined {
    if (!/^(\$this|[A-Za-z]+(\.[A-Za-z]+)*)$/.test(d.path)) return undefined;
    const steps = d.path === '$this' ? [] : d.path.split('.');
    const at = (root: ElementNode | undefined) => steps.reduce<ElementNode | undefined>((node, step) => node?.children.get(step), root);
    if (d.type === 'profile') {
      for (const url of at(slice)?.rule.types?.value.flatMap((t) => t.profile) ?? []) {
        if (url.startsWith(R4_BASE)) return { path: steps, kind: 'type', type: url.slice(R4_BASE.length) };
        const profile = this.profile(url);
        if (profile) return { path: steps, kind: 'profile', profile };
      }
      return undefined;
    }
    if (d.type !== 'value' && d.type !== 'pattern') return undefined;
    // An extension slice is known by its url: the profile of its type (R4 "extension slicing").
    const extension = slice.rule.types?.value.find((t) => t.code === 'Extension');
    if (d.path === 'url' && extension?.profile.length === 1) return { path: steps, kind: 'fixed', value: extension.profile[0] };
    const typeProfiles = slice.rule.types?.value.flatMap((t) => t.profile) ?? [];
    for (const root of [slice, ...typeProfiles.flatMap((url) => this.profile(url)?.root ?? [])]) {
      const rule = at(root)?.rule;
      if (rule?.fixed) return { path: steps, kind: 'fixed', value: rule.fixed.value };
      if (rule?.pattern) return { path: steps, kind: 'pattern', value: rule.pattern.value };
      const binding = rule?.binding?.value;
      const codes = binding?.strength === 'required' && binding.valueSet ? this.expansion(binding.valueSet) : undefined;
      if (codes) return { path: steps, kind: 'codes', codes };
    }
    return at(slice) === undefined ? { path: steps, kind: 'any' } : undefined;
  }

  knownProfile(url: string): boolean {
    return this.compiled.has(canonical(url));
  }

  /** The loaded profiles of resources (not datatypes or extensions), for docs and the CapabilityStatement. */
  resourceProfiles(): ProfileSummary[] {
    return [...this.compiled.values()].filter((p) => p.kind === 'resource').map((p) => ({ url: p.url, name: p.name, type: p.type }));
  }

  /** Problems of `resource` against a loaded profile (errors and warnings); throws if the profile is not loaded. */
  validateProfile(resource: Resource, url: string): Issue[] {
    const profile = this.profile(url);
    if (!profile) throw new Error(`profile ${url} is not loaded`);
    if (profile.type !== resource.resourceType) {
      return [{ severity: 'error', code: 'invalid', diagnostics: `${resource.resourceType}: profile ${profile.name} constrains ${profile.type}, not ${resource.resourceType}`, expression: [resource.resourceType] }];
    }
    return checkProfile(this, profile, resource, resource.resourceType).map((i) => ({ severity: i.severity, code: i.code, diagnostics: i.diagnostics, expression: [i.expression] }));
  }

  /**
   * Problems against every loaded profile meta.profile claims, the resource's own and its
   * contained resources' (located under `contained[i]`); unknown ones are claims Carnet does not check.
   */
  claimedProfileIssues(resource: Resource): Issue[] {
    const claimed = resource.meta?.profile ?? [];
    const own = claimed.filter((url) => this.knownProfile(url)).flatMap((url) => this.validateProfile(resource, url));
    const contained = 'contained' in resource && Array.isArray(resource.contained) ? (resource.contained as Resource[]) : [];
    return own.concat(
      contained.flatMap((inner, i) => {
        const from = inner.resourceType;
        const to = `${resource.resourceType}.contained[${i}]`;
        const move = (text: string) => (text.startsWith(from) ? to + text.slice(from.length) : text);
        return this.claimedProfileIssues(inner).map((issue) => ({ ...issue, diagnostics: move(issue.diagnostics), ...(issue.expression ? { expression: issue.expression.map(move) } : {}) }));
      }),
    );
  }
}

/** The profiles, ValueSets and CodeSystems of the JSON files under `dir` (profiles/ by default). */
export function loadProfiles(dir: string = PROFILES_DIR): ProfileRegistry {
  const resources = conformanceResources(dir).filter((r) => r.resourceType === 'StructureDefinition' || r.resourceType === 'ValueSet' || r.resourceType === 'CodeSystem');
  try {
    return new ProfileRegistry(resources);
  } catch (error) {
    throw new Error(`profiles: ${dir}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

let loaded: ProfileRegistry | undefined;

/** The registry of profiles/, loaded on first use (main loads it at start-up so a broken file stops the server). */
export function profiles(): ProfileRegistry {
  return (loaded ??= loadProfiles());
}

export function knownProfile(url: string): boolean {
  return profiles().knownProfile(url);
}

export function validateProfile(resource: Resource, url: string): Issue[] {
  return profiles().validateProfile(resource, url);
}

export function claimedProfileIssues(resource: Resource): Issue[] {
  return profiles().claimedProfileIssues(resource);
}
