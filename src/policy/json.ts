// policy/json: comparing versions of a resource, element by element, as the write rules do (pure).

import type { Resource } from '@medplum/fhirtypes';

/** Deep equality of two JSON values, whatever the order of object keys. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(b)) return false;
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** The elements of `before` and `after` that differ, among `elements` (default: all but meta and text). */
export function changed(before: Resource, after: Resource, elements?: string[]): string[] {
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;
  const names = elements ?? [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => k !== 'meta' && k !== 'text');
  return names.filter((e) => !sameJson(a[e], b[e]));
}
