// fhir/operations: the $operations the server implements, as a table (OPERATIONS) that the router,
// the CapabilityStatement and the OperationDefinitions (fhir/operation-definitions) all read. An
// entry that declares its `parameters` has every other input refused by the router (400). $validate (R4 Resource-validate) gives the verdict a
// create or update would give, without storing anything, and with `profile` also the verdict of
// that profile (docs/profiles.md). The Subscription operations are in fhir/subscriptions, the
// account operations in fhir/accounts, the patient summary in fhir/summary.

import type { Parameters, Resource } from '@medplum/fhirtypes';
import type { FhirContext, FhirRequest, FhirResponse, Method } from './context.js';
import { SUBSCRIPTION_OPERATIONS } from './subscriptions.js';
import { ACCOUNT_OPERATIONS } from './accounts.js';
import { SUMMARY_OPERATION } from './summary.js';
import { EVERYTHING_OPERATION } from './everything.js';
import { AGENDA_OPERATIONS } from './agenda.js';
import { FhirError, Invalid, informational, NotFound, operationOutcome, type Issue } from '../base/outcome.js';
import { resourceFromBody } from './body.js';
import { access } from './access.js';
import { claimedProfileIssues, knownProfile, validateProfile } from './profiles.js';

/** The resource to validate: the body itself, or the `resource` parameter of a Parameters body. */
function candidate(req: FhirRequest): FhirRequest['body'] {
  if (req.body.kind === 'json') {
    const value = req.body.value as Partial<Parameters> | null;
    if (value && typeof value === 'object' && value.resourceType === 'Parameters') {
      const resource = value.parameter?.find((p) => p.name === 'resource')?.resource;
      if (!resource) throw new Invalid('$validate with a Parameters body needs a "resource" parameter');
      return { kind: 'json', value: resource, mediaType: req.body.mediaType };
    }
  }
  return req.body;
}

/** The profile to validate against: `?profile=` or the Parameters body's `profile` parameter. */
function requestedProfile(req: FhirRequest): string | undefined {
  const fromQuery = req.query.find(([name]) => name === 'profile')?.[1];
  const value = req.body.kind === 'json' ? (req.body.value as Partial<Parameters> | null) : null;
  const parameter = value && typeof value === 'object' && value.resourceType === 'Parameters' ? value.parameter?.find((p) => p.name === 'profile') : undefined;
  const url = fromQuery ?? parameter?.valueUri ?? parameter?.valueCanonical ?? parameter?.valueString;
  if (url === undefined) return undefined;
  if (!knownProfile(url)) throw new Invalid(`Profile ${url} is not known to this server (see GET [base]/metadata, supportedProfile)`, 'profile', 'not-supported');
  return url;
}

function validate(req: FhirRequest, type: string, id?: string): FhirResponse {
  const profile = requestedProfile(req);
  const body = candidate(req);
  let resource: Resource;
  try {
    resource = resourceFromBody(body, type);
    if (id !== undefined && resource.id !== id) throw new Invalid(`The resource's id "${resource.id}" does not match the URL's id "${id}"`, `${type}.id`);
  } catch (error) {
    // R4: $validate answers 200 when it could validate, whatever the verdict (400 schema, 422 claimed profiles).
    if (error instanceof FhirError && (error.status === 400 || error.status === 422)) return { status: 200, headers: {}, resource: operationOutcome(error.issues) };
    throw error;
  }
  // The write accepted it; what is left to say: the requested profile's verdict and the claimed profiles' warnings.
  const issues: Issue[] = [...(profile ? validateProfile(resource, profile) : []), ...claimedProfileIssues(resource)];
  const unique = issues.filter((issue, i) => issues.findIndex((o) => o.diagnostics === issue.diagnostics) === i);
  if (unique.some((i) => i.severity !== 'warning')) return { status: 200, headers: {}, resource: operationOutcome(unique) };
  const verdict = informational(`The ${type} is valid${profile ? ` against ${profile}` : ''}`);
  return { status: 200, headers: {}, resource: { ...verdict, issue: [...operationOutcome(unique).issue, ...verdict.issue] } };
}

/** One input or output of an operation, as OperationDefinition.parameter declares it. */
export interface OperationParameter {
  name: string;
  use: 'in' | 'out';
  min: number;
  /** A number or `*`. */
  max: string;
  /** A FHIR type (`string`, `Resource`, `Bundle`...); absent for a parameter made of `part`s. */
  type?: string;
  documentation?: string;
  /** The parts of a tuple parameter (same `use` as their parent). */
  part?: readonly OperationParameter[];
}

/** One $operation: where it applies, how it is declared, and its handlers (the router and the CapabilityStatement read this table). */
export interface Operation {
  /** The name without `$`. */
  name: string;
  /**
   * The canonical URL of the official OperationDefinition this operation implements: the
   * CapabilityStatement names it, and this server serves a definition generated from this entry
   * with that url at [base]/OperationDefinition/[its last segment]. Absent for Carnet's own: served
   * at [base]/OperationDefinition/[Type]-[name], which is its url (fhir/operation-definitions).
   */
  definition?: string;
  documentation: string;
  /** Its inputs and outputs; absent: none declared and not checked, one `return` out (DEFAULT_PARAMETERS). */
  parameters?: readonly OperationParameter[];
  /** It changes what is stored (OperationDefinition.affectsState); false when absent. */
  affectsState?: boolean;
  /** The types it applies to; every type when absent. */
  types?: readonly string[];
  /** [type]/$name. */
  type?: { methods: readonly Method[]; handler: (ctx: FhirContext, req: FhirRequest, type: string) => Promise<FhirResponse> };
  /** [type]/[id]/$name. */
  instance?: { methods: readonly Method[]; handler: (ctx: FhirContext, req: FhirRequest, type: string, id: string) => Promise<FhirResponse> };
}

const VALIDATE: Operation = {
  name: 'validate',
  definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
  parameters: [
    { name: 'resource', use: 'in', min: 0, max: '1', type: 'Resource', documentation: 'The resource to validate (or the body itself, when it is not a Parameters).' },
    { name: 'profile', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'A profile of this server (metadata, supportedProfile) to validate against too.' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'The verdict: errors and warnings, or one informational issue.' },
  ],
  documentation:
    'POST [type]/$validate and POST [type]/[id]/$validate: the verdict a create or update would give (schema, claimed profiles), without storing anything; `profile` (query or Parameters) adds that profile\'s verdict. Needs create (type) or update (instance) permission.',
  // $validate reads nothing stored; it answers what a create would, so it needs create permission.
  type: {
    methods: ['POST'],
    handler: async (_ctx, req, type) => {
      access(req, type, 'c');
      return validate(req, type);
    },
  },
  instance: {
    methods: ['POST'],
    handler: async (_ctx, req, type, id) => {
      access(req, type, 'u');
      return validate(req, type, id);
    },
  },
};

/** Every operation the server implements. A new one is a module exporting its Operation, and a line here. */
export const OPERATIONS: readonly Operation[] = [VALIDATE, ...SUBSCRIPTION_OPERATIONS, ...ACCOUNT_OPERATIONS, SUMMARY_OPERATION, EVERYTHING_OPERATION, ...AGENDA_OPERATIONS];

/** The operations declared for a type in the CapabilityStatement. */
export function operationsOf(type: string): Operation[] {
  return OPERATIONS.filter((o) => !o.types || o.types.includes(type));
}

/** The parameters of an entry that declares none: its answer, whatever it is. */
export const DEFAULT_PARAMETERS: readonly OperationParameter[] = [{ name: 'return', use: 'out', min: 0, max: '1', type: 'Resource', documentation: 'The answer of the operation.' }];

export function parametersOf(operation: Operation): readonly OperationParameter[] {
  return operation.parameters ?? DEFAULT_PARAMETERS;
}

function find(type: string, operation: string): Operation | undefined {
  return operationsOf(type).find((o) => `$${o.name}` === operation);
}

/**
 * The names a request gives as inputs: its query's (but the `_` ones every interaction takes,
 * `_format`, `_pretty`...) and its Parameters body's.
 */
function inputNames(req: FhirRequest): string[] {
  const names = req.query.map(([name]) => name).filter((name) => !name.startsWith('_'));
  const value = req.body.kind === 'json' ? (req.body.value as Partial<Parameters> | null) : null;
  if (value && typeof value === 'object' && value.resourceType === 'Parameters') names.push(...(value.parameter ?? []).map((p) => p.name));
  return names;
}

/** The stable code that leads the diagnostics of an input an operation does not declare. */
export const UNDECLARED_PARAMETER = 'OPERATION_PARAMETER_UNDECLARED';

/** An operation that declares its parameters takes no other input (R4 OperationDefinition: the inputs are the `in` parameters). */
function assertDeclaredInputs(operation: Operation, req: FhirRequest): void {
  if (!operation.parameters) return;
  const declared = new Set(operation.parameters.filter((p) => p.use === 'in').map((p) => p.name));
  const unknown = [...new Set(inputNames(req).filter((name) => !declared.has(name)))];
  if (unknown.length > 0) {
    const known = [...declared].join(', ') || 'none';
    throw new Invalid(`${UNDECLARED_PARAMETER}: $${operation.name} has no parameter ${unknown.map((n) => `"${n}"`).join(', ')} (its inputs: ${known})`, unknown, 'not-supported');
  }
}

export async function typeOperation(ctx: FhirContext, req: FhirRequest, type: string, operation: string): Promise<FhirResponse> {
  const found = find(type, operation);
  if (found?.type && found.type.methods.includes(req.method)) {
    assertDeclaredInputs(found, req);
    return found.type.handler(ctx, req, type);
  }
  throw new NotFound(`Operation ${req.method} ${type}/${operation}`);
}

export async function instanceOperation(ctx: FhirContext, req: FhirRequest, type: string, id: string, operation: string): Promise<FhirResponse> {
  const found = find(type, operation);
  if (found?.instance && found.instance.methods.includes(req.method)) {
    assertDeclaredInputs(found, req);
    return found.instance.handler(ctx, req, type, id);
  }
  throw new NotFound(`Operation ${req.method} ${type}/${id}/${operation}`);
}
