// fhir/capabilities: GET [base]/metadata. The CapabilityStatement is generated from the type
// registry, the search parameter registry and the interaction table below, so it cannot drift
// from what the server does; only the fixed texts come from conformance/capability-base.json.

import { createRequire } from 'node:module';
import type { CapabilityStatement, CapabilityStatementRestResource, ResourceType } from '@medplum/fhirtypes';
import { SERVED_TYPES } from './registry.js';
import { paramsOf } from '../search/params.js';
import { profiles } from './profiles.js';
import type { FhirContext, FhirResponse } from './context.js';

const require = createRequire(import.meta.url);
const base = require('../../conformance/capability-base.json') as CapabilityStatement;
const { version } = require('../../package.json') as { version: string };

// Every type supports the same interactions: the routes in fhir/http.ts serve each of them.
export const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const;
export const SYSTEM_INTERACTIONS = ['transaction', 'batch', 'search-system', 'history-system'] as const;

/** Every Source:param whose reference parameter may point at `type`, for _revinclude. */
function revIncludes(type: string): string[] {
  return SERVED_TYPES.flatMap((source) =>
    paramsOf(source)
      .filter((p) => p.type === 'reference' && (p.targets.length === 0 || p.targets.includes(type)))
      .map((p) => `${source}:${p.code}`),
  );
}

/** The profiles of profiles/ a write's meta.profile and $validate?profile= are checked against. */
function supportedProfiles(type: string): Pick<CapabilityStatementRestResource, 'supportedProfile'> {
  const urls = profiles()
    .resourceProfiles()
    .filter((p) => p.type === type)
    .map((p) => p.url);
  return urls.length ? { supportedProfile: urls } : {};
}

function resourceEntry(type: ResourceType): CapabilityStatementRestResource {
  return {
    type,
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    ...supportedProfiles(type),
    interaction: TYPE_INTERACTIONS.map((code) => ({ code })),
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalRead: 'modified-since',
    conditionalUpdate: true,
    conditionalDelete: 'single',
    referencePolicy: ['literal', 'local'],
    searchInclude: ['*', ...paramsOf(type).filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`)],
    searchRevInclude: revIncludes(type),
    searchParam: paramsOf(type).map((p) => ({
      name: p.code,
      type: p.type === 'id' ? 'token' : p.type,
      definition: p.url,
      documentation: p.documentation,
    })),
    operation: [{ name: 'validate', definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate' }],
  };
}

const cache = new WeakMap<FhirContext, CapabilityStatement>();

export function capabilityStatement(ctx: FhirContext): CapabilityStatement {
  const cached = cache.get(ctx) ?? {
    ...base,
    date: new Date().toISOString(),
    software: { name: 'Carnet', version },
    implementation: { description: base.title ?? 'Carnet', url: ctx.baseUrl },
    rest: [
      {
        mode: 'server',
        resource: SERVED_TYPES.map(resourceEntry),
        interaction: SYSTEM_INTERACTIONS.map((code) => ({ code })),
      },
    ],
  };
  cache.set(ctx, cached);
  return cached;
}

export function metadata(ctx: FhirContext): FhirResponse {
  return { status: 200, headers: {}, resource: capabilityStatement(ctx) };
}
