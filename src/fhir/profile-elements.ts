// fhir/profile-elements: turns a profile's StructureDefinition and its baseDefinition chain into
// one tree of element rules, by merging the differentials in order (R4 base first, the profile
// last). Works from differentials only: what the R4 base itself says is the JSON schema's job.

import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';

/** A rule with the profile (StructureDefinition id) that set it, for the messages. */
export interface From<T> {
  value: T;
  from: string;
}

export interface Invariant {
  key: string;
  severity: 'error' | 'warning';
  human: string;
  expression?: string;
  from: string;
}

export interface Discriminator {
  type: 'value' | 'pattern' | 'exists' | 'type' | 'profile';
  path: string;
}

export interface ElementRule {
  /** The element path without slice names, e.g. `DocumentReference.content.attachment`. */
  path: string;
  min?: From<number>;
  max?: From<string>;
  /** `fixed[x]` / `pattern[x]`: the JSON value, and the element name it came under (fixedUri...). */
  fixed?: From<unknown>;
  pattern?: From<unknown>;
  binding?: From<{ strength: string; valueSet?: string }>;
  /** Allowed types and the profiles each type's values must conform to. */
  types?: From<{ code: string; profile: string[] }[]>;
  slicing?: From<{ discriminator: Discriminator[]; rules: 'open' | 'closed' | 'openAtEnd' }>;
  invariants: Invariant[];
}

export interface ElementNode {
  rule: ElementRule;
  /** Child elements by name (a choice keeps its `[x]`: `value[x]`). */
  children: Map<string, ElementNode>;
  /** Slices of this element by slice name. */
  slices: Map<string, ElementNode>;
}

export interface CompiledProfile {
  url: string;
  /** The StructureDefinition id, used in messages: `IHE.MHD.Comprehensive.DocumentReference`. */
  name: string;
  /** The type constrained: a resource type, a datatype, or `Extension`. */
  type: string;
  /** StructureDefinition.kind: `resource`, `complex-type`... */
  kind: string;
  /** This profile's URL, then its bases', up to the last one before the R4 base. */
  chain: string[];
  root: ElementNode;
  /**
   * Compiled from its own snapshot: the canonical base (`https://.../StructureDefinition/`) whose
   * type profiles it follows. Profiles of other IGs it names were resolved by its publisher at
   * the version it was built on, which may not be the one loaded here.
   */
  scope?: string;
}

export const R4_BASE = 'http://hl7.org/fhir/StructureDefinition/';

export function canonical(url: string): string {
  return url.split('|')[0];
}

function newNode(path: string): ElementNode {
  return { rule: { path, invariants: [] }, children: new Map(), slices: new Map() };
}

function cloneNode(node: ElementNode): ElementNode {
  const clone = (map: Map<string, ElementNode>) => new Map([...map].map(([k, v]) => [k, cloneNode(v)]));
  return { rule: { ...node.rule, invariants: [...node.rule.invariants] }, children: clone(node.children), slices: clone(node.slices) };
}

/** The `fixed...`/`pattern...` member of an ElementDefinition, if any. */
function prefixed(element: ElementDefinition, prefix: 'fixed' | 'pattern'): unknown {
  for (const [key, value] of Object.entries(element)) {
    if (key.startsWith(prefix) && /^[A-Z]/.test(key.slice(prefix.length))) return value;
  }
  return undefined;
}

/** Splits an element id into [name, sliceName] segments, after the root type. */
function segments(id: string): [string, string | undefined][] {
  return id
    .split('.')
    .slice(1)
    .map((segment) => {
      const at = segment.indexOf(':');
      return at < 0 ? [segment, undefined] : [segment.slice(0, at), segment.slice(at + 1)];
    });
}

function apply(root: ElementNode, element: ElementDefinition, from: string, fromSnapshot = false): void {
  let node = root;
  let path = root.rule.path;
  for (const [name, slice] of segments(element.id ?? element.path ?? '')) {
    path = `${path}.${name}`;
    let child = node.children.get(name);
    if (!child) node.children.set(name, (child = newNode(path)));
    if (slice !== undefined) {
      let sliced = child.slices.get(slice);
      if (!sliced) child.slices.set(slice, (sliced = newNode(path)));
      child = sliced;
    }
    node = child;
  }
  const rule = node.rule;
  if (element.min !== undefined) rule.min = { value: element.min, from };
  if (element.max !== undefined) rule.max = { value: element.max, from };
  const fixed = prefixed(element, 'fixed');
  if (fixed !== undefined) rule.fixed = { value: fixed, from };
  const pattern = prefixed(element, 'pattern');
  if (pattern !== undefined) rule.pattern = { value: pattern, from };
  if (element.binding?.strength) rule.binding = { value: { strength: element.binding.strength, ...(element.binding.valueSet ? { valueSet: canonical(element.binding.valueSet) } : {}) }, from };
  if (element.type?.length) rule.types = { value: element.type.map((t) => ({ code: t.code ?? '', profile: (t.profile ?? []).map(canonical) })), from };
  if (element.slicing) {
    rule.slicing = {
      value: { discriminator: (element.slicing.discriminator ?? []) as Discriminator[], rules: element.slicing.rules ?? 'open' },
      from,
    };
  }
  for (const c of element.constraint ?? []) {
    // A snapshot repeats the R4 base's own invariants (ele-1, dom-2...): the base is not this profile's to check.
    if (fromSnapshot && (!c.source || canonical(c.source).startsWith(R4_BASE))) continue;
    if (!c.key || rule.invariants.some((i) => i.key === c.key)) continue;
    rule.invariants.push({ key: c.key, severity: c.severity === 'warning' ? 'warning' : 'error', human: c.human ?? '', ...(c.expression ? { expression: c.expression } : {}), from });
  }
}

/**
 * Compiles a profile. One published with a snapshot (IG Publisher output) is compiled from it
 * alone; one without (SUSHI output) is its base's tree (compiled first, through `lookup`) with
 * its differential applied. Throws when a base is neither loaded nor an R4 definition.
 */
export function compileProfile(sd: StructureDefinition, lookup: (url: string) => CompiledProfile | undefined): CompiledProfile {
  const url = canonical(sd.url ?? '');
  const name = sd.id ?? sd.name ?? url;
  const type = sd.type ?? '';
  const kind = sd.kind ?? '';
  const baseUrl = canonical(sd.baseDefinition ?? '');
  if (sd.snapshot?.element?.length) {
    const root = newNode(type);
    for (const element of sd.snapshot.element) {
      checkUnder(element, type);
      apply(root, element, name, true);
    }
    return { url, name, type, kind, chain: [url, ...(lookup(baseUrl)?.chain ?? [])], root, scope: url.slice(0, url.lastIndexOf('/') + 1) };
  }
  let root: ElementNode;
  let chain: string[];
  if (baseUrl.startsWith(R4_BASE) && !lookup(baseUrl)) {
    root = newNode(type);
    chain = [url];
  } else {
    const base = lookup(baseUrl);
    if (!base) throw new Error(`its baseDefinition ${baseUrl || '(none)'} is neither an R4 definition nor a loaded profile`);
    if (base.type !== type) throw new Error(`it constrains ${type} but its base ${base.name} constrains ${base.type}`);
    root = cloneNode(base.root);
    chain = [url, ...base.chain];
  }
  for (const element of sd.differential?.element ?? []) {
    checkUnder(element, type);
    apply(root, element, name);
  }
  return { url, name, type, kind, chain, root };
}

function checkUnder(element: ElementDefinition, type: string): void {
  const id = element.id ?? element.path ?? '';
  if (id.split('.')[0] !== type) throw new Error(`element ${id} is not under ${type}`);
}

/** Every node of a tree with the path of slice names leading to it, for load-time checks. */
export function* walk(node: ElementNode, label = node.rule.path): Generator<[ElementNode, string]> {
  yield [node, label];
  for (const [name, child] of node.children) yield* walk(child, `${label}.${name}`);
  for (const [slice, child] of node.slices) yield* walk(child, `${label}:${slice}`);
}
