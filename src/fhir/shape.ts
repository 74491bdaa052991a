// fhir/shape: what of a resource the client asked to see (R4 search 3.1.1.5.8 _summary and
// 3.1.1.5.9 _elements). Decides nothing about whether the client may see it: that is policy/.

import { createRequire } from 'node:module';
import type { Resource } from '@medplum/fhirtypes';
import type { SummaryMode } from '../search/types.js';

const require = createRequire(import.meta.url);
// Built by scripts/build-definitions.mjs from the official StructureDefinitions.
const ELEMENTS = require('../../generated/elements.json') as Record<string, { summary: string[]; mandatory: string[] }>;

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' };
const ALWAYS = ['resourceType', 'id', 'meta'];

/** Whether a JSON key is the element `name` (a choice element value[x] matches valueQuantity...). */
function isElement(key: string, name: string): boolean {
  if (key.startsWith('_')) key = key.slice(1); // primitive extensions follow their element
  if (!name.endsWith('[x]')) return key === name;
  const stem = name.slice(0, -3);
  return key.startsWith(stem) && /^[A-Z]/.test(key.slice(stem.length));
}

function keep(resource: Resource, names: string[]): Resource {
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (ALWAYS.includes(key) || names.some((name) => isElement(key, name))) kept[key] = value;
  }
  const meta = (kept.meta ?? {}) as NonNullable<Resource['meta']>;
  kept.meta = { ...meta, tag: [...(meta.tag ?? []), SUBSETTED] };
  return kept as unknown as Resource;
}

export interface Shape {
  summary?: SummaryMode;
  elements?: string[];
}

/** The resource as the client asked to see it; unchanged when nothing was asked. */
export function shape(resource: Resource, { summary, elements }: Shape): Resource {
  const known = ELEMENTS[resource.resourceType];
  if (elements && elements.length > 0) return keep(resource, [...elements, ...(known?.mandatory ?? [])]);
  switch (summary) {
    case 'true':
      return keep(resource, known?.summary ?? []);
    case 'text':
      return keep(resource, ['text', ...(known?.mandatory ?? [])]);
    case 'data': {
      const { text: _text, ...rest } = resource as Resource & { text?: unknown };
      return keep(rest as Resource, Object.keys(rest));
    }
    default:
      return resource;
  }
}
