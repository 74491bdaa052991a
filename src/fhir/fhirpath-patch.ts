// fhir/fhirpath-patch: FHIRPath Patch (R4 fhirpatch.html), the Parameters form of PATCH that IHE
// MHD uses to mark a replaced DocumentReference superseded. Applies add, insert, delete, replace
// and move to a copy of the resource; the caller validates the result like any update.

import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4/index.js';
import { createRequire } from 'node:module';
import type { Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { Invalid, Unprocessable } from '../base/outcome.js';

const require = createRequire(import.meta.url);

type Json = Record<string, unknown>;

interface Operation {
  type: 'add' | 'insert' | 'delete' | 'replace' | 'move';
  path: string;
  name?: string;
  value?: unknown;
  index?: number;
  source?: number;
  destination?: number;
}

const TYPES = new Set(['add', 'insert', 'delete', 'replace', 'move']);

/** True when a PATCH body is a FHIRPath Patch (a Parameters resource) rather than a JSON Patch. */
export function isFhirPathPatch(body: unknown): body is Parameters {
  return !!body && typeof body === 'object' && (body as { resourceType?: unknown }).resourceType === 'Parameters';
}

// The value of a part: value[x], or an anonymous element built from nested parts.
function partValue(part: ParametersParameter): unknown {
  if (part.part) return Object.fromEntries(part.part.map((p) => [p.name, partValue(p)]));
  const key = Object.keys(part).find((k) => k.startsWith('value'));
  return key === undefined ? undefined : (part as unknown as Json)[key];
}

function operations(parameters: Parameters): Operation[] {
  return (parameters.parameter ?? []).map((parameter, i) => {
    if (parameter.name !== 'operation' || !parameter.part) throw new Invalid(`FHIRPath Patch: Parameters.parameter[${i}] must be an "operation" with parts`);
    const parts = new Map(parameter.part.map((p) => [p.name, p]));
    const type = parts.get('type')?.valueCode;
    const path = parts.get('path')?.valueString;
    if (!type || !TYPES.has(type)) throw new Invalid(`FHIRPath Patch: operation ${i} has no valid type (add, insert, delete, replace, move)`);
    if (!path) throw new Invalid(`FHIRPath Patch: operation ${i} has no path`);
    const op: Operation = { type: type as Operation['type'], path };
    const name = parts.get('name')?.valueString;
    if (name !== undefined) op.name = name;
    if (parts.has('value')) op.value = partValue(parts.get('value') as ParametersParameter);
    for (const key of ['index', 'source', 'destination'] as const) {
      const n = parts.get(key)?.valueInteger;
      if (n !== undefined) op[key] = n;
    }
    const needs: Record<Operation['type'], (keyof Operation)[]> = {
      add: ['name', 'value'],
      insert: ['index', 'value'],
      delete: [],
      replace: ['value'],
      move: ['source', 'destination'],
    };
    for (const key of needs[op.type]) if (op[key] === undefined) throw new Invalid(`FHIRPath Patch: operation ${i} (${op.type}) needs a ${key}`);
    return op;
  });
}

function evaluate(resource: Resource, path: string): unknown[] {
  try {
    return fhirpath.evaluate(resource, path, undefined, r4model) as unknown[];
  } catch (error) {
    throw new Invalid(`FHIRPath Patch: "${path}" is not a valid FHIRPath expression: ${(error as Error).message}`);
  }
}

/** Where an element lives: its container object and key, and its index when the key holds a list. */
interface Place {
  container: Json;
  key: string;
  index?: number;
}

// Finds where each matched object sits in the resource (fhirpath returns the resource's own objects).
function placesOf(resource: Resource, targets: unknown[]): Place[] {
  const wanted = new Set(targets);
  const found: Place[] = [];
  const visit = (node: unknown) => {
    if (!node || typeof node !== 'object') return;
    for (const [key, child] of Object.entries(node as Json)) {
      if (Array.isArray(child)) {
        child.forEach((item, index) => {
          if (wanted.has(item)) found.push({ container: node as Json, key, index });
          visit(item);
        });
      } else if (child && typeof child === 'object') {
        if (wanted.has(child)) found.push({ container: node as Json, key });
        visit(child);
      }
    }
  };
  visit(resource);
  return found;
}

// A path ending in a plain element name is located through its parent, so primitives work too.
const TRAILING_NAME = /^(.+)\.([A-Za-z][A-Za-z0-9]*)$/;

function locate(resource: Resource, path: string): Place[] {
  const trailing = TRAILING_NAME.exec(path);
  if (trailing && !/[()[\]]/.test(trailing[2])) {
    const parents = trailing[1].includes('.') || trailing[1] !== resource.resourceType ? evaluate(resource, trailing[1]) : [resource];
    const places: Place[] = [];
    for (const parent of parents) {
      if (!parent || typeof parent !== 'object') continue;
      const value = (parent as Json)[trailing[2]];
      if (Array.isArray(value)) value.forEach((_, index) => places.push({ container: parent as Json, key: trailing[2], index }));
      else if (value !== undefined) places.push({ container: parent as Json, key: trailing[2] });
    }
    return places;
  }
  const targets = evaluate(resource, path);
  const places = placesOf(resource, targets);
  if (places.length !== targets.length) throw new Unprocessable(`FHIRPath Patch: "${path}" selects values that cannot be located in the resource`);
  return places;
}

function single(places: Place[], op: Operation): Place {
  if (places.length === 0) throw new Unprocessable(`FHIRPath Patch: ${op.type} path "${op.path}" matches nothing`);
  if (places.length > 1) throw new Unprocessable(`FHIRPath Patch: ${op.type} path "${op.path}" matches more than one element`);
  return places[0];
}

function listAt(resource: Resource, op: Operation): unknown[] {
  const place = single(locate(resource, op.path).filter((p) => p.index === undefined || p.index === 0), op);
  const list = place.container[place.key];
  if (!Array.isArray(list)) throw new Unprocessable(`FHIRPath Patch: ${op.type} path "${op.path}" is not a list`);
  return list;
}

function apply(resource: Resource, op: Operation): void {
  switch (op.type) {
    case 'replace': {
      const place = single(locate(resource, op.path), op);
      if (place.index === undefined) place.container[place.key] = op.value;
      else (place.container[place.key] as unknown[])[place.index] = op.value;
      return;
    }
    case 'delete': {
      const places = locate(resource, op.path);
      if (places.length === 0) return; // R4: deleting nothing is not an error
      const place = single(places, op);
      if (place.index === undefined) delete place.container[place.key];
      else {
        const list = place.container[place.key] as unknown[];
        list.splice(place.index, 1);
        if (list.length === 0) delete place.container[place.key];
      }
      return;
    }
    case 'add': {
      const parents = op.path === resource.resourceType ? [resource] : evaluate(resource, op.path);
      if (parents.length !== 1 || !parents[0] || typeof parents[0] !== 'object') throw new Unprocessable(`FHIRPath Patch: add path "${op.path}" must match exactly one element`);
      const parent = parents[0] as Json;
      const name = op.name as string;
      const existing = parent[name];
      if (Array.isArray(existing)) existing.push(op.value);
      else if (existing === undefined) parent[name] = isListElement(resource, op.path, name) ? [op.value] : op.value;
      else throw new Unprocessable(`FHIRPath Patch: add "${name}" at "${op.path}": the element already has a value (use replace)`);
      return;
    }
    case 'insert': {
      const list = listAt(resource, op);
      const index = op.index as number;
      if (index < 0 || index > list.length) throw new Unprocessable(`FHIRPath Patch: insert index ${index} is outside the list`);
      list.splice(index, 0, op.value);
      return;
    }
    case 'move': {
      const list = listAt(resource, op);
      const [from, to] = [op.source as number, op.destination as number];
      if (from < 0 || from >= list.length || to < 0 || to >= list.length) throw new Unprocessable('FHIRPath Patch: move source or destination is outside the list');
      const [item] = list.splice(from, 1);
      list.splice(to, 0, item);
      return;
    }
    default: {
      const never: never = op.type;
      throw new Error(`unknown operation ${String(never)}`);
    }
  }
}

// Whether `name` under `path` is a list (max "*") in the R4 definitions, so add creates an array.
function isListElement(resource: Resource, path: string, name: string): boolean {
  const segments = path.replace(/\.where\(.*?\)|\.first\(\)|\[\d+\]/g, '').split('.');
  if (segments[0] === resource.resourceType) segments.shift();
  return isList(resource.resourceType, [...segments, name]);
}

// Element path -> "<* when a list><first type code>" for each R4 resource and datatype, from the
// official definitions at build time (scripts/build-definitions.mjs); read the first time an add needs it.
let elementTypes: Record<string, Record<string, string>> | undefined;

// Walks the element path through backbone elements and datatypes: whether its last element is a list.
function isList(type: string, segments: string[]): boolean {
  elementTypes ??= require('../../generated/element-types.json') as Record<string, Record<string, string>>;
  let elements = elementTypes[type];
  let prefix = type;
  for (const [i, segment] of segments.entries()) {
    const element = elements?.[`${prefix}.${segment}`];
    if (element === undefined) return false;
    if (i === segments.length - 1) return element.startsWith('*');
    const code = element.replace(/^\*/, '');
    if (code === 'BackboneElement' || code === 'Element') prefix = `${prefix}.${segment}`;
    else if (code !== '') {
      elements = elementTypes[code];
      prefix = code;
    } else return false;
  }
  return false;
}

/** Applies a FHIRPath Patch to a copy of `resource` (Invalid when malformed, Unprocessable when it cannot apply). */
export function applyFhirPathPatch(resource: Resource, parameters: Parameters): Resource {
  const ops = operations(parameters);
  const copy = structuredClone(resource);
  for (const op of ops) apply(copy, op);
  return copy;
}
