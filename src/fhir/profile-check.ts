// fhir/profile-check: checks one resource (or one datatype value) against a compiled profile
// tree: cardinalities, fixed and pattern values, required bindings, FHIRPath invariants,
// slices, and the profiles of typed elements (extensions by url, identifiers...). Pure: no I/O.

import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4';
import type { IssueCode } from '../base/outcome.js';
import type { CompiledProfile, Discriminator, ElementNode, ElementRule } from './profile-elements.js';
import type { Expansion } from './terminology.js';

export interface ProfileIssue {
  severity: 'error' | 'warning';
  code: IssueCode;
  expression: string;
  diagnostics: string;
}

/** What the checker needs from the registry: other profiles, ValueSet codes, slice keys. */
export interface CheckEnv {
  profile(url: string): CompiledProfile | undefined;
  /** The codes of a ValueSet, or undefined when they cannot be known locally (then not checked). */
  expansion(url: string): Expansion | undefined;
  /** How an item is recognised as belonging to a slice; undefined when it cannot be (noted at load). */
  sliceKey(slice: ElementNode, discriminators: Discriminator[]): SliceKey[] | undefined;
}

/** One discriminator of one slice: what the value at `path` must be for an item to be in the slice. */
export type SliceKey =
  | { path: string[]; kind: 'fixed' | 'pattern'; value: unknown }
  | { path: string[]; kind: 'codes'; codes: Expansion }
  | { path: string[]; kind: 'profile'; profile: CompiledProfile }
  | { path: string[]; kind: 'type'; type: string }
  | { path: string[]; kind: 'any' };

interface Ctx {
  env: CheckEnv;
  root: unknown;
  /** The profile asked for, named in messages when a rule comes from one of its bases. */
  asked: string;
  /** Type profiles followed: all, or those under this canonical base (see CompiledProfile.scope). */
  scope: string | undefined;
  issues: ProfileIssue[];
}

interface Item {
  value: unknown;
  expression: string;
  /** For a choice element: the type suffix of the JSON name (`Reference` in valueReference). */
  choice?: string;
}

const EXTENSION_SLICING: Discriminator[] = [{ type: 'value', path: 'url' }];

/** How the slices of element `name` are told apart: its slicing, or by url for extensions (R4 default). */
export function discriminatorsOf(rule: ElementRule, name: string): Discriminator[] | undefined {
  return rule.slicing?.value.discriminator ?? (/^(modifierE|e)xtension$/.test(name) ? EXTENSION_SLICING : undefined);
}

export function checkProfile(env: CheckEnv, profile: CompiledProfile, value: unknown, expression: string, root: unknown = value): ProfileIssue[] {
  const ctx: Ctx = { env, root, asked: profile.name, scope: profile.scope, issues: [] };
  checkNode(ctx, profile.root, { value, expression });
  return ctx.issues;
}

function by(ctx: Ctx, from: string): string {
  return from === ctx.asked ? from : `${from} (checking ${ctx.asked})`;
}

function report(ctx: Ctx, code: IssueCode, expression: string, diagnostics: string, severity: 'error' | 'warning' = 'error'): void {
  ctx.issues.push({ severity, code, expression, diagnostics: `${expression}: ${diagnostics}` });
}

/** Checks one value against the element rule that describes it, then its children. */
function checkNode(ctx: Ctx, node: ElementNode, item: Item): void {
  checkValue(ctx, node.rule, item);
  for (const [name, child] of node.children) checkChild(ctx, child, name, item);
}

function checkChild(ctx: Ctx, child: ElementNode, name: string, parent: Item): void {
  if (typeof parent.value !== 'object' || parent.value === null) return;
  const items = childItems(parent.value as Record<string, unknown>, name, parent.expression);
  const where = `${parent.expression}.${name.replace('[x]', '')}`;
  checkCount(ctx, child.rule, items.length, where);
  const discriminators = discriminatorsOf(child.rule, name);
  const matched = new Map<Item, ElementNode>();
  if (child.slices.size > 0 && discriminators) {
    const counts = new Map<string, number>([...child.slices.keys()].map((s) => [s, 0]));
    for (const item of items) {
      for (const [sliceName, slice] of child.slices) {
        const keys = ctx.env.sliceKey(slice, discriminators);
        if (keys && keys.every((k) => matchesKey(ctx, k, item.value))) {
          matched.set(item, slice);
          counts.set(sliceName, (counts.get(sliceName) ?? 0) + 1);
          break;
        }
      }
      if (!matched.has(item) && child.rule.slicing?.value.rules === 'closed') {
        report(ctx, 'structure', item.expression, `matches none of the slices ${[...child.slices.keys()].join(', ')}, and ${by(ctx, child.rule.slicing.from)} closes the slicing`);
        explainMiss(ctx, child, discriminators, item);
      }
    }
    for (const [sliceName, slice] of child.slices) checkCount(ctx, slice.rule, counts.get(sliceName) ?? 0, `${where}:${sliceName}`);
  }
  const extensions = /^(modifierE|e)xtension$/.test(name);
  for (const item of items) {
    checkNode(ctx, child, item);
    const slice = matched.get(item);
    if (slice) checkNode(ctx, slice, item);
    // An extension the profile does not slice is still checked against its definition, when loaded.
    else if (extensions) {
      const url = (item.value as { url?: unknown } | null)?.url;
      if (typeof url === 'string') checkTypeProfile(ctx, [url], item, child.rule.path);
    }
  }
}

/**
 * Why an item is in no slice, when a slice expects its resource type under a profile (a Bundle
 * entry whose DocumentReference does not conform): that profile's issues, located in the item.
 */
function explainMiss(ctx: Ctx, child: ElementNode, discriminators: Discriminator[], item: Item): void {
  for (const slice of child.slices.values()) {
    for (const key of ctx.env.sliceKey(slice, discriminators) ?? []) {
      if (key.kind !== 'profile') continue;
      const inner = valuesAt(item.value, key.path).find((v) => resourceTypeOf(v) === key.profile.type);
      if (inner === undefined) continue;
      checkTypeProfile(ctx, [key.profile.url], { value: inner, expression: [item.expression, ...key.path].join('.') }, child.rule.path);
      return;
    }
  }
}

/** The values of element `name` in `parent`, each with its FHIRPath location. */
function childItems(parent: Record<string, unknown>, name: string, expression: string): Item[] {
  if (name.endsWith('[x]')) {
    const prefix = name.slice(0, -3);
    return Object.keys(parent)
      .filter((k) => k.startsWith(prefix) && /^[A-Z]/.test(k.slice(prefix.length)) && parent[k] !== undefined)
      .map((k) => ({ value: parent[k], expression: `${expression}.${k}`, choice: k.slice(prefix.length) }));
  }
  const value = parent[name] ?? parent[`_${name}`];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return [{ value, expression: `${expression}.${name}` }];
  const shadow = parent[`_${name}`];
  return value.flatMap((v: unknown, i: number) => (v === null && !(Array.isArray(shadow) && shadow[i]) ? [] : [{ value: v, expression: `${expression}.${name}[${i}]` }]));
}

function checkCount(ctx: Ctx, rule: ElementRule, count: number, where: string): void {
  if (rule.min && count < rule.min.value) {
    report(ctx, 'required', where, `minimum ${rule.min.value} required by ${by(ctx, rule.min.from)}${count > 0 ? `, found ${count}` : ''}`);
  }
  if (rule.max && rule.max.value !== '*' && count > Number(rule.max.value)) {
    const max = Number(rule.max.value);
    report(ctx, 'structure', where, max === 0 ? `not allowed by ${by(ctx, rule.max.from)}` : `maximum ${max} allowed by ${by(ctx, rule.max.from)}, found ${count}`);
  }
}

function checkValue(ctx: Ctx, rule: ElementRule, item: Item): void {
  const { value, expression } = item;
  const types = rule.types?.value;
  if (item.choice !== undefined && types?.length && !types.some((t) => t.code.toLowerCase() === item.choice!.toLowerCase())) {
    report(ctx, 'structure', expression, `type ${item.choice} is not allowed by ${by(ctx, rule.types!.from)} (allowed: ${types.map((t) => t.code).join(', ')})`);
  }
  if (rule.fixed && !deepEqual(value, rule.fixed.value)) {
    report(ctx, 'value', expression, `must be exactly ${show(rule.fixed.value)} (fixed by ${by(ctx, rule.fixed.from)}), found ${show(value)}`);
  }
  if (rule.pattern && !matchesPattern(value, rule.pattern.value)) {
    report(ctx, 'value', expression, `must match ${show(rule.pattern.value)} (pattern of ${by(ctx, rule.pattern.from)}), found ${show(value)}`);
  }
  const binding = rule.binding?.value;
  if (binding?.strength === 'required' && binding.valueSet) checkBinding(ctx, binding.valueSet, rule.binding!.from, item);
  for (const invariant of rule.invariants) {
    if (!invariant.expression) continue;
    let verdict: unknown[];
    try {
      verdict = compiled(rule.path, invariant.expression)(value, { resource: ctx.root, rootResource: ctx.root });
    } catch (error) {
      report(ctx, 'invariant', expression, `invariant ${invariant.key} of ${by(ctx, invariant.from)} could not be evaluated (${error instanceof Error ? error.message : String(error)})`, 'warning');
      continue;
    }
    // FHIRPath invariants hold unless they evaluate to false (an empty result is not a failure).
    if (verdict.length === 1 && verdict[0] === false) {
      report(ctx, 'invariant', expression, `invariant ${invariant.key} of ${by(ctx, invariant.from)} failed: ${invariant.human}`, invariant.severity);
    }
  }
  // A typed element whose type names a profile (an extension slice, an Identifier profile...).
  if (types?.length === 1) checkTypeProfile(ctx, types[0].profile, item, rule.path);
}

/** Checks a value against the first loaded profile of `urls` (in scope), with that profile's own rules. */
function checkTypeProfile(ctx: Ctx, urls: string[], item: Item, path: string): void {
  for (const url of urls) {
    const profile = ctx.scope === undefined || url.startsWith(ctx.scope) ? ctx.env.profile(url) : undefined;
    if (!profile) continue;
    const inner: Ctx = { ...ctx, asked: profile.name, scope: profile.scope, issues: [] };
    checkNode(inner, profile.root, item);
    for (const issue of inner.issues) ctx.issues.push({ ...issue, diagnostics: `${issue.diagnostics} (type profile of ${path} in ${ctx.asked})` });
    return;
  }
}

function checkBinding(ctx: Ctx, valueSet: string, from: string, item: Item): void {
  const expansion = ctx.env.expansion(valueSet);
  if (!expansion) return;
  const { value } = item;
  let codes: [string | undefined, string][];
  if (typeof value === 'string') codes = [[undefined, value]];
  else if (value && typeof value === 'object' && 'coding' in value) codes = ((value as { coding?: { system?: string; code?: string }[] }).coding ?? []).flatMap((c) => (c.code ? [[c.system, c.code] as [string | undefined, string]] : []));
  else if (value && typeof value === 'object' && 'code' in value && typeof (value as { code: unknown }).code === 'string') codes = [[(value as { system?: string }).system, (value as { code: string }).code]];
  else return;
  if (codes.some(([system, code]) => expansion.has(system, code))) return;
  const shown = codes.length ? codes.map(([s, c]) => (s ? `${s}|${c}` : c)).join(', ') : 'no code';
  report(ctx, 'code-invalid', item.expression, `${shown} is not in the ValueSet ${valueSet} (required binding of ${by(ctx, from)})`);
}

function matchesKey(ctx: Ctx, key: SliceKey, value: unknown): boolean {
  const found = valuesAt(value, key.path);
  switch (key.kind) {
    case 'fixed':
      return found.some((v) => deepEqual(v, key.value));
    case 'pattern':
      return found.some((v) => matchesPattern(v, key.value));
    case 'codes':
      return found.some((v) => typeof v === 'string' && key.codes.has(undefined, v));
    case 'type':
      return found.some((v) => resourceTypeOf(v) === key.type);
    case 'profile':
      return found.some(
        (v) => (resourceTypeOf(v) ?? key.profile.type) === key.profile.type && checkProfile(ctx.env, key.profile, v, 'slice', ctx.root).every((i) => i.severity !== 'error'),
      );
    case 'any':
      return true;
  }
}

function resourceTypeOf(value: unknown): string | undefined {
  const type = value && typeof value === 'object' ? (value as { resourceType?: unknown }).resourceType : undefined;
  return typeof type === 'string' ? type : undefined;
}

function valuesAt(value: unknown, path: string[]): unknown[] {
  let current = [value];
  for (const name of path) {
    current = current.flatMap((v) => {
      const next = v && typeof v === 'object' ? (v as Record<string, unknown>)[name] : undefined;
      return next === undefined || next === null ? [] : Array.isArray(next) ? next : [next];
    });
  }
  return current;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** FHIR pattern[x]: every member of the pattern is in the value; each pattern array item is matched by some value item. */
export function matchesPattern(value: unknown, pattern: unknown): boolean {
  if (Array.isArray(pattern)) return Array.isArray(value) && pattern.every((p) => value.some((v) => matchesPattern(v, p)));
  if (pattern && typeof pattern === 'object') {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
    return Object.entries(pattern).every(([k, p]) => matchesPattern((value as Record<string, unknown>)[k], p));
  }
  return value === pattern;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

type Compiled = (value: unknown, vars: Record<string, unknown>) => unknown[];
const cache = new Map<string, Compiled>();

/** FHIRPath compiled once per element path and expression (R4 model, typed from the element path). */
function compiled(path: string, expression: string): Compiled {
  const key = `${path}\u0000${expression}`;
  let fn = cache.get(key);
  if (!fn) {
    const base = path.replace(/\[x\]/g, '');
    const compiledFn = fhirpath.compile({ base, expression }, r4model);
    fn = (value, vars) => compiledFn(value as never, vars) as unknown[];
    cache.set(key, fn);
  }
  return fn;
}
