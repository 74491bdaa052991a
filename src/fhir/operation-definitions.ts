// fhir/operation-definitions: GET [base]/OperationDefinition/[id] and GET [base]/OperationDefinition?...
// One OperationDefinition per entry of the OPERATIONS table, generated from it (name, types,
// levels, parameters, affectsState), so that a definition cannot drift from the operation the
// router serves. Conformance resources, not records: no patient data, read by anyone (the routes
// are public, as metadata is), written by no one (405).

import type { Bundle, OperationDefinition, OperationDefinitionParameter, ResourceType } from '@medplum/fhirtypes';
import { createRequire } from 'node:module';
import { Invalid, MethodNotAllowed, NotFound } from '../base/outcome.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { OPERATIONS, parametersOf, type Operation, type OperationParameter } from './operations.js';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

export const OPERATION_DEFINITION = 'OperationDefinition';

/** The id of an operation's definition here: the official canonical's last segment, or [Type]-[name] for Carnet's own. */
export function definitionId(operation: Operation): string {
  if (operation.definition) return operation.definition.slice(operation.definition.lastIndexOf('/') + 1);
  return `${operation.types?.[0] ?? 'Resource'}-${operation.name}`;
}

/** The canonical a CapabilityStatement names: the official one, or where this server serves Carnet's own. */
export function definitionUrl(baseUrl: string, operation: Operation): string {
  return operation.definition ?? `${baseUrl}/${OPERATION_DEFINITION}/${definitionId(operation)}`;
}

function parameter(p: OperationParameter): OperationDefinitionParameter {
  return {
    name: p.name,
    use: p.use,
    min: p.min,
    max: p.max,
    ...(p.documentation ? { documentation: p.documentation } : {}),
    ...(p.type ? { type: p.type } : {}),
    ...(p.part ? { part: p.part.map(parameter) } : {}),
  };
}

/** PascalCase of the operation's code, for OperationDefinition.name (a computer-usable name). */
function pascal(words: string): string {
  return words
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w !== '')
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
}

export function operationDefinition(baseUrl: string, operation: Operation): OperationDefinition & { id: string } {
  const types = operation.types ?? ['Resource'];
  return {
    resourceType: 'OperationDefinition',
    id: definitionId(operation),
    url: definitionUrl(baseUrl, operation),
    version,
    name: pascal(`${types.length === 1 ? types[0] : 'Resource'} ${operation.name}`),
    title: `$${operation.name}`,
    status: 'active',
    kind: 'operation',
    publisher: 'Carnet',
    description: operation.documentation,
    affectsState: operation.affectsState ?? false,
    code: operation.name,
    resource: types as ResourceType[],
    system: false,
    type: operation.type !== undefined,
    instance: operation.instance !== undefined,
    parameter: parametersOf(operation).map(parameter),
  };
}

export function operationDefinitions(baseUrl: string): (OperationDefinition & { id: string })[] {
  return OPERATIONS.map((o) => operationDefinition(baseUrl, o));
}

interface DefinitionSearch {
  type: 'token' | 'uri' | 'string';
  /** The official SearchParameter. */
  definition: string;
  matches: (d: OperationDefinition, value: string) => boolean;
}

const conformance = (code: string) => `http://hl7.org/fhir/SearchParameter/conformance-${code}`;
const own = (code: string) => `http://hl7.org/fhir/SearchParameter/OperationDefinition-${code}`;

/** The search parameters GET [base]/OperationDefinition takes (the CapabilityStatement lists them), each a test of one definition. */
export const DEFINITION_SEARCH: Readonly<Record<string, DefinitionSearch>> = {
  _id: { type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id', matches: (d, v) => d.id === v },
  url: { type: 'uri', definition: conformance('url'), matches: (d, v) => d.url === v },
  name: { type: 'string', definition: conformance('name'), matches: (d, v) => d.name?.toLowerCase().startsWith(v.toLowerCase()) ?? false },
  status: { type: 'token', definition: conformance('status'), matches: (d, v) => d.status === v },
  code: { type: 'token', definition: own('code'), matches: (d, v) => d.code === v },
  kind: { type: 'token', definition: own('kind'), matches: (d, v) => d.kind === v },
  system: { type: 'token', definition: own('system'), matches: (d, v) => String(d.system) === v },
  type: { type: 'token', definition: own('type'), matches: (d, v) => String(d.type) === v },
  instance: { type: 'token', definition: own('instance'), matches: (d, v) => String(d.instance) === v },
};
/** Parameters of every interaction that do not select anything here. */
const IGNORED = new Set(['_format', '_pretty']);

function search(ctx: FhirContext, req: FhirRequest): FhirResponse {
  let found = operationDefinitions(ctx.baseUrl);
  for (const [name, value] of req.query) {
    if (IGNORED.has(name)) continue;
    const param = DEFINITION_SEARCH[name];
    if (!param) throw new Invalid(`OperationDefinition is searched by ${Object.keys(DEFINITION_SEARCH).join(', ')}; not by "${name}"`, name, 'not-supported');
    // A comma is an OR of values (R4 search 3.1.1.4.2).
    const values = value.split(',');
    found = found.filter((d) => values.some((v) => param.matches(d, v)));
  }
  const query = new URLSearchParams(req.query).toString();
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    total: found.length,
    link: [{ relation: 'self', url: `${ctx.baseUrl}/${OPERATION_DEFINITION}${query ? `?${query}` : ''}` }],
    entry: found.map((d) => ({ fullUrl: `${ctx.baseUrl}/${OPERATION_DEFINITION}/${d.id}`, resource: d, search: { mode: 'match' } })),
  };
  return { status: 200, headers: {}, resource: bundle };
}

/** Every request whose target's type is OperationDefinition (fhir/dispatch sends them here). */
export function definitions(ctx: FhirContext, req: FhirRequest): FhirResponse {
  const { target, method } = req;
  if (method !== 'GET' && method !== 'HEAD') throw new MethodNotAllowed(`${OPERATION_DEFINITION} is read-only on this server: its definitions are generated from the operations it serves`, 'GET');
  switch (target.kind) {
    case 'type':
      return search(ctx, req);
    case 'instance': {
      const definition = operationDefinitions(ctx.baseUrl).find((d) => d.id === target.id);
      if (!definition) throw new NotFound(`${OPERATION_DEFINITION}/${target.id}`);
      return { status: 200, headers: {}, resource: definition };
    }
    default:
      throw new NotFound(`${OPERATION_DEFINITION}: only read and search are served`);
  }
}
