// fhir/dispatch: from a parsed request (an HTTP route or a Bundle entry) to the interaction that
// answers it. The one place that knows which method on which target is which interaction.

import type { FhirContext, FhirRequest, FhirResponse, Target } from './context.js';
import { MethodNotAllowed, NotFound } from '../base/outcome.js';
import { isServedType } from '../base/registry.js';
import { checkId } from './resource.js';
import { metadata } from './capabilities.js';
import { read } from './read.js';
import { vread } from './vread.js';
import { create } from './create.js';
import { conditionalUpdate, update } from './update.js';
import { patch } from './patch.js';
import { conditionalDelete, remove } from './delete.js';
import { history } from './history.js';
import { search } from './search.js';
import { instanceOperation, typeOperation } from './operations.js';
import { processBundle } from './batch.js';
import { definitions, OPERATION_DEFINITION } from './operation-definitions.js';

/** Parses a path below the base ("Patient/1/_history/2") into a target; null if it is none. */
export function parseTarget(path: string): Target | null {
  const s = path.split('/').filter((part) => part !== '').map((part) => decodeURIComponent(part));
  const [type, second, third, fourth] = s;
  switch (s.length) {
    case 0:
      return { kind: 'system' };
    case 1:
      if (type === 'metadata') return { kind: 'metadata' };
      if (type === '_history') return { kind: 'system-history' };
      return { kind: 'type', type };
    case 2:
      if (second === '_search') return { kind: 'type-search', type };
      if (second === '_history') return { kind: 'type-history', type };
      if (second.startsWith('$')) return { kind: 'type-operation', type, operation: second };
      return { kind: 'instance', type, id: second };
    case 3:
      if (third === '_history') return { kind: 'instance-history', type, id: second };
      if (third.startsWith('$')) return { kind: 'instance-operation', type, id: second, operation: third };
      return null;
    case 4:
      return third === '_history' ? { kind: 'version', type, id: second, versionId: fourth } : null;
    default:
      return null;
  }
}

function criteriaOf(req: FhirRequest): string {
  return new URLSearchParams(req.query).toString();
}

function notAllowed(req: FhirRequest, allow: string): never {
  throw new MethodNotAllowed(`${req.method} is not allowed here; allowed: ${allow}`, allow);
}

export async function dispatch(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  const { target, method } = req;
  if ('id' in target) checkId(target.id);
  // The definitions of the operations are generated, never stored (fhir/operation-definitions).
  if ('type' in target && target.type === OPERATION_DEFINITION) return definitions(ctx, req);
  if ('type' in target && !isServedType(target.type)) throw new NotFound(`Resource type "${target.type}"`);
  const get = method === 'GET' || method === 'HEAD';
  switch (target.kind) {
    case 'metadata':
      return get ? metadata(ctx) : notAllowed(req, 'GET');
    case 'system':
      if (get) return search(ctx, req, undefined, req.query);
      return method === 'POST' ? processBundle(ctx, req) : notAllowed(req, 'GET, POST');
    case 'system-history':
      return get ? history(ctx, req, target, { level: 'system' }) : notAllowed(req, 'GET');
    case 'type':
      if (get) return search(ctx, req, target.type, req.query);
      if (method === 'POST') return create(ctx, req, target.type);
      if (method === 'PUT') return conditionalUpdate(ctx, req, target.type, criteriaOf(req));
      if (method === 'DELETE') return conditionalDelete(ctx, req, target.type, criteriaOf(req));
      return notAllowed(req, 'GET, POST, PUT, DELETE');
    case 'type-search':
      if (method !== 'POST') return notAllowed(req, 'POST');
      return search(ctx, req, target.type, [...req.query, ...(req.body.kind === 'form' ? req.body.params : [])]);
    case 'type-history':
      return get ? history(ctx, req, target, { level: 'type', type: target.type }) : notAllowed(req, 'GET');
    case 'type-operation':
      return typeOperation(ctx, req, target.type, target.operation);
    case 'instance':
      if (get) return read(ctx, req, target.type, target.id);
      if (method === 'PUT') return update(ctx, req, target.type, target.id);
      if (method === 'PATCH') return patch(ctx, req, target.type, target.id);
      if (method === 'DELETE') return remove(ctx, req, target.type, target.id);
      return notAllowed(req, 'GET, PUT, PATCH, DELETE');
    case 'instance-history':
      return get ? history(ctx, req, target, { level: 'instance', type: target.type, id: target.id }) : notAllowed(req, 'GET');
    case 'version':
      return get ? vread(ctx, req, target.type, target.id, target.versionId) : notAllowed(req, 'GET');
    case 'instance-operation':
      return instanceOperation(ctx, req, target.type, target.id, target.operation);
  }
}
