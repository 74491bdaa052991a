// fhir/capabilities: GET [base]/metadata. The CapabilityStatement is generated from the type
// registry, the search parameter registry and the interaction table below, so it cannot drift
// from what the server does; only the fixed texts come from conformance/capability-base.json
// (including `instantiates`: the IHE MHD and ANS PDSm CapabilityStatements Carnet meets, which
// test/e2e/capabilities-official.test.ts checks against the official ones, request by request).

import { createRequire } from 'node:module';
import type { CapabilityStatement, CapabilityStatementRestResource, CapabilityStatementRestSecurity, ResourceType } from '@medplum/fhirtypes';
import { SERVED_TYPES } from '../base/registry.js';
import { paramsOf } from '../search/params.js';
import { profiles } from './profiles.js';
import { operationsOf } from './operations.js';
import { DEFINITION_SEARCH, definitionUrl, OPERATION_DEFINITION } from './operation-definitions.js';
import { capabilityExtensions, type TopicRegistry } from '../notify/topics.js';
import { BACKPORT_SUBSCRIPTION_PROFILE } from '../notify/subscription.js';
import type { FhirContext, FhirResponse } from './context.js';
import { authBase } from '../auth/context.js';

const require = createRequire(import.meta.url);
const base = require('../../conformance/capability-base.json') as CapabilityStatement;
const { version } = require('../../package.json') as { version: string };

// Every type supports the same interactions: the routes in fhir/http.ts serve each of them.
export const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const;
export const SYSTEM_INTERACTIONS = ['transaction', 'batch', 'search-system', 'history-system'] as const;

/** SMART on FHIR: the service coding and the token endpoint, as .well-known/smart-configuration gives it. */
function security(baseUrl: string): CapabilityStatementRestSecurity {
  return {
    cors: false,
    service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR', display: 'SMART-on-FHIR' }], text: 'SMART on FHIR (Backend Services and bearer JWTs of trusted issuers)' }],
    extension: [
      {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        // Carnet serves no authorization endpoint (no interactive launch): only the token endpoint.
        extension: [{ url: 'token', valueUri: `${authBase(baseUrl)}/token` }],
      },
    ],
    description:
      'Every request but GET metadata and GET .well-known/smart-configuration carries a bearer JWT: an access token from POST /auth/token (SMART Backend Services, client_credentials with private_key_jwt), or a token of a configured identity provider. SMART v1 and v2 scopes are enforced on every interaction; patient tokens reach only their own records; the patient\'s consent is checked on every read and write. Discovery: [base]/.well-known/smart-configuration.',
  };
}

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

function resourceEntry(baseUrl: string, type: ResourceType, topics?: TopicRegistry): CapabilityStatementRestResource {
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
      ...(p.documentation ? { documentation: p.documentation } : {}),
    })),
    ...(type === 'Subscription' && topics ? { extension: capabilityExtensions(topics), supportedProfile: [...(supportedProfiles(type).supportedProfile ?? []), BACKPORT_SUBSCRIPTION_PROFILE] } : {}),
    operation: operationsOf(type).map((o) => ({ name: o.name, definition: definitionUrl(baseUrl, o), documentation: o.documentation })),
  };
}

/** The transaction interaction, naming the ITI-65 Provide Document Bundle profiles of profiles/ (as IHE MHD's statements do). */
function transactionDocumentation(): string {
  const bundles = profiles()
    .resourceProfiles()
    .filter((p) => p.type === 'Bundle')
    .map((p) => p.url);
  return `Transaction Bundles, atomic. A Bundle claiming one of these profiles, or carrying an MHD SubmissionSet, is an IHE MHD ITI-65 Provide Document Bundle, checked whole against the Document Recipient's rules (docs/mhd.md): ${bundles.join(', ')}`;
}

/** The definitions of the operations above, generated from their table (fhir/operation-definitions): read and search, public, never written. */
const OPERATION_DEFINITIONS: CapabilityStatementRestResource = {
  type: OPERATION_DEFINITION,
  profile: `http://hl7.org/fhir/StructureDefinition/${OPERATION_DEFINITION}`,
  documentation: 'The definition of each operation this server serves, generated from its table; public (no bearer token), read-only (writes are 405).',
  interaction: [{ code: 'read' }, { code: 'search-type' }],
  searchParam: Object.entries(DEFINITION_SEARCH).map(([name, p]) => ({ name, type: p.type, definition: p.definition })),
};

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
        security: security(ctx.baseUrl),
        resource: [...SERVED_TYPES.map((type) => resourceEntry(ctx.baseUrl, type, ctx.topics)), OPERATION_DEFINITIONS],
        interaction: SYSTEM_INTERACTIONS.map((code) => (code === 'transaction' ? { code, documentation: transactionDocumentation() } : { code })),
      },
    ],
  };
  cache.set(ctx, cached);
  return cached;
}

export function metadata(ctx: FhirContext): FhirResponse {
  return { status: 200, headers: {}, resource: capabilityStatement(ctx) };
}
