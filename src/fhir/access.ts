// fhir/access: where the FHIR interactions meet authorization: the token's scopes (auth/) and,
// for patient/ scopes, the patient compartment (policy/). Every interaction calls these before
// it reads or writes, so that batch and transaction entries are checked exactly like requests.

import type { Resource } from '@medplum/fhirtypes';
import { authorize, type Access } from '../auth/authorize.js';
import type { Permission } from '../auth/scopes.js';
import { compartmentCondition, inCompartment } from '../policy/compartment.js';
import type { SearchPage, SearchQuery } from '../store/port.js';
import type { SearchPlan } from '../search/types.js';
import type { FhirContext, FhirRequest } from './context.js';
import { Forbidden, NotFound, Unauthorized } from './outcome.js';

export type { Access };

export function access(req: FhirRequest, type: string, permission: Permission): Access {
  // Defence in depth: the auth hook refuses unauthenticated requests before they get here.
  if (!req.actor) throw new Unauthorized('Authentication is required');
  return authorize(req.actor, type, permission);
}

/** Whether the access reaches this resource (always, unless restricted to compartments). */
export function reaches(granted: Access, resource: Resource): boolean {
  return !granted.compartment || inCompartment(resource, granted.compartment);
}

/** A resource outside the reachable compartments reads as unknown: its existence is not revealed. */
export function assertVisible(granted: Access, resource: Resource | undefined, what: string): void {
  if (resource && !reaches(granted, resource)) throw new NotFound(what);
}

/** A write must leave the resource inside the reachable compartments. */
export function assertWritable(granted: Access, resource: Resource): void {
  if (!reaches(granted, resource)) throw new Forbidden(`${resource.resourceType} would be outside the compartment of patient ${granted.compartment?.join(', ')}, which is all this token reaches`);
}

/** The plan with the compartment restriction of the access merged into its conditions. */
export function restrict(granted: Access, plan: SearchPlan): SearchPlan {
  if (!granted.compartment) return plan;
  if (plan.types.length !== 1) throw new Forbidden('A token limited to a patient compartment searches one resource type at a time');
  const condition = compartmentCondition(plan.types[0], granted.compartment);
  if (!condition) throw new Forbidden(`${plan.types[0]} resources are not part of a patient compartment, which is all this token reaches`);
  return { ...plan, where: [...plan.where, condition] };
}

/** A search the request's token may run (conditional criteria, conditional references). */
export async function searchAs(ctx: FhirContext, req: FhirRequest, plan: SearchPlan, query: SearchQuery): Promise<SearchPage> {
  let restricted = plan;
  for (const type of plan.types) restricted = restrict(access(req, type, 's'), restricted);
  return ctx.store.search(restricted, query);
}
