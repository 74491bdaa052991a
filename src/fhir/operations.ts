// fhir/operations: the $operations the server implements. $validate (R4 Resource-validate)
// gives the verdict a create or update would give, without storing anything.

import type { Parameters, Resource } from '@medplum/fhirtypes';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { FhirError, Invalid, informational, NotFound, operationOutcome } from './outcome.js';
import { resourceFromBody } from './body.js';
import { access } from './access.js';

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

function validate(req: FhirRequest, type: string, id?: string): FhirResponse {
  const body = candidate(req);
  try {
    const resource: Resource = resourceFromBody(body, type);
    if (id !== undefined && resource.id !== id) throw new Invalid(`The resource's id "${resource.id}" does not match the URL's id "${id}"`, `${type}.id`);
  } catch (error) {
    // R4: $validate answers 200 when it could validate, whatever the verdict.
    if (error instanceof FhirError && error.status === 400) return { status: 200, headers: {}, resource: operationOutcome(error.issues) };
    throw error;
  }
  return { status: 200, headers: {}, resource: informational(`The ${type} is valid`) };
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
