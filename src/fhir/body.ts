// fhir/body: the resource a request carries, whatever its form: FHIR JSON, or raw bytes that
// become a Binary (R4 Binary: "POST [base]/Binary with the content's own media type").

import { randomUUID } from 'node:crypto';
import type { Binary, Resource } from '@medplum/fhirtypes';
import type { Body } from './context.js';
import { Invalid, UnsupportedMediaType } from '../base/outcome.js';
import { incomingResource, type IncomingOptions } from './resource.js';
import { withPointer } from './binary.js';

export function resourceFromBody(body: Body, type: string, options: IncomingOptions = {}): Resource {
  switch (body.kind) {
    case 'none':
      throw new Invalid(`A ${type} resource is required in the request body`);
    case 'raw':
    case 'content':
      if (type !== 'Binary') {
        throw new UnsupportedMediaType(`Content-Type "${body.mediaType}" is not FHIR JSON; use application/fhir+json`);
      }
      if (body.kind === 'content') return withPointer(incomingResource({ resourceType: 'Binary', contentType: body.mediaType }, type) as Binary, body.blob);
      return incomingResource({ resourceType: 'Binary', contentType: body.mediaType, data: body.data.toString('base64') }, type);
    case 'json':
      return incomingResource(body.value, type, options);
    case 'form':
      throw new UnsupportedMediaType('A form body carries search parameters, not a resource; use application/fhir+json');
  }
}

export function newId(): string {
  return randomUUID();
}
