// conformance/variables: `${name}` substitution and TestScript.variable evaluation
// (defaultValue, FHIRPath expression or headerField on a fixture or a response), plus the FHIRPath
// evaluation the asserts share.

import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4';
import type { Exchange, Variable } from './types.js';

export const PLACEHOLDER = /\$\{([A-Za-z0-9_.:-]+)\}/g;

/** A variable the script uses that nothing defines. */
export class UnresolvedVariable extends Error {
  constructor(readonly variable: string) {
    super(`variable \${${variable}} is not defined (by the TestScript, or supplied to the runner)`);
  }
}

/** A value supplied by the runner: a fixed string, or one computed at each use (a fresh client assertion). */
export type Supplied = string | (() => string | Promise<string>);

/** Where variables read their values: fixtures (and responses kept by responseId), and exchanges. */
export interface VariableSources {
  /** A fixture's resource, or the parsed body of a response kept under that id. */
  body(id: string): unknown;
  /** The exchange kept under a responseId; undefined for a plain fixture. */
  exchange(id: string): Exchange | undefined;
  /** The latest response, for variables without sourceId. */
  latest(): Exchange | undefined;
}

/** FHIRPath on any JSON (FHIR resources with the R4 model; other JSON is walked as is). */
export function evaluatePath(input: unknown, expression: string, env: Record<string, unknown> = {}): unknown[] {
  if (input === undefined) return [];
  return fhirpath.evaluate(input as object, expression, env, r4model) as unknown[];
}

/** A FHIRPath result as the one string TestScript compares: the first item (objects as JSON). */
export function asText(values: unknown[]): string | undefined {
  if (values.length === 0) return undefined;
  const first = values[0];
  return typeof first === 'object' && first !== null ? JSON.stringify(first) : String(first);
}

/** Replaces every `${name}` of `text` with lookup(name); an unknown name throws UnresolvedVariable. */
export async function substitute(text: string, lookup: (name: string) => Promise<string | undefined>): Promise<string> {
  const names = [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]))];
  if (names.length === 0) return text;
  const values = new Map<string, string>();
  for (const name of names) {
    const value = await lookup(name);
    if (value === undefined) throw new UnresolvedVariable(name);
    values.set(name, value);
  }
  return text.replace(PLACEHOLDER, (_, name: string) => values.get(name)!);
}

/** substitute() on every string of a JSON value (fixtures are sent with their variables replaced). */
export async function substituteDeep<T>(value: T, lookup: (name: string) => Promise<string | undefined>): Promise<T> {
  if (typeof value === 'string') return (await substitute(value, lookup)) as T;
  if (Array.isArray(value)) return (await Promise.all(value.map((v) => substituteDeep(v, lookup)))) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await substituteDeep(v, lookup);
    return out as T;
  }
  return value;
}

/**
 * The variables of one TestScript run. A value supplied to the runner wins over the script's
 * definition of the same name (so a tester can set what a script defaults); `token-*` names no one
 * supplied fall back to `fallbackToken` (--token) when there is one.
 */
export class Variables {
  private readonly defined = new Map<string, Variable>();

  constructor(
    definitions: Variable[],
    private readonly supplied: Record<string, Supplied>,
    private readonly sources: VariableSources,
    private readonly fallbackToken?: string,
  ) {
    for (const v of definitions) this.defined.set(v.name, v);
  }

  readonly lookup = async (name: string): Promise<string | undefined> => {
    const given = this.supplied[name];
    if (given !== undefined) return typeof given === 'function' ? given() : given;
    const definition = this.defined.get(name);
    if (definition) return this.evaluate(definition);
    if (name.startsWith('token-')) return this.fallbackToken;
    return undefined;
  };

  /** A script variable's current value: evaluated at each use, as TestScript asks. */
  private async evaluate(v: Variable): Promise<string | undefined> {
    let value: string | undefined;
    if (v.headerField !== undefined) {
      const exchange = v.sourceId !== undefined ? this.sources.exchange(v.sourceId) : this.sources.latest();
      value = exchange?.headers[v.headerField.toLowerCase()];
    } else if (v.expression !== undefined) {
      const input = v.sourceId !== undefined ? this.sources.body(v.sourceId) : this.sources.latest()?.json;
      const expression = await substitute(v.expression, this.lookup);
      value = asText(evaluatePath(input, expression));
    } else if (v.path !== undefined) {
      throw new Error(`variable ${v.name}: path (XPath/JSONPath) is not supported; use expression (FHIRPath)`);
    }
    // A default may itself name variables (`Patient/${patient-id}`).
    return value ?? (v.defaultValue !== undefined ? substitute(v.defaultValue, this.lookup) : undefined);
  }
}
