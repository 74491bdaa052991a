// fhir/operations: the $operations the server implements. $validate (R4 Resource-validate)
// gives the verdict a create or update would give, without storing anything, and with
// `profile` also the verdict of that profile (docs/profiles.md).

import type { Parameters, Resource } from '@medplum/fhirtypes';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
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

export async function typeOperation(_ctx: FhirContext, req: FhirRequest, type: string, operation: string): Promise<FhirResponse> {
  // $validate reads nothing stored; it answers what a create would, so it needs create permission.
  if (operation === '$validate' && req.method === 'POST') {
    access(req, type, 'c');
    return validate(req, type);
  }
  throw new NotFound(`Operation ${req.method} ${type}/${operation}`);
}

export async function instanceOperation(_ctx: FhirContext, req: FhirRequest, type: string, id: string, operation: string): Promise<FhirResponse> {
  if (operation === '$validate' && req.method === 'POST') {
    access(req, type, 'u');
    return validate(req, type, id);
  }
  throw new NotFound(`Operation ${req.method} ${type}/${id}/${operation}`);
}
