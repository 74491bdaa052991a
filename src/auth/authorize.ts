// auth/authorize: whether a token's SMART scopes allow one interaction on one resource type, and
// whether only `patient/` scopes do (then the actor reaches only its patients' compartments).

import { Forbidden } from '../base/outcome.js';
import { compartmentPatients, type Actor } from './actor.js';
import { formatGrant, grantsFor, type Permission } from './scopes.js';

const NAMES: Record<Permission, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

/** What a permitted interaction may reach: everything, or only these patients' compartments. */
export interface Access {
  actor: Actor;
  /** Patient ids: set when only patient/ scopes allow the interaction. */
  compartment?: string[];
}

/** 403 unless a scope of the actor allows `permission` on `type`. */
export function authorize(actor: Actor, type: string, permission: Permission): Access {
  const grants = grantsFor(actor.grants, type, permission);
  if (grants.length === 0) {
    const held = actor.grants.map(formatGrant).join(' ') || 'none';
    throw new Forbidden(`The token's scopes (${held}) do not allow ${NAMES[permission]} on ${type}`);
  }
  // A patient (or a representative) only ever reaches their compartments, whatever the scope
  // context says; other actors are limited only when patient/ scopes alone allow the interaction.
  const personal = actor.kind === 'patient' || actor.kind === 'representative';
  if (!personal && grants.some((g) => g.context !== 'patient')) return { actor };
  const compartment = compartmentPatients(actor);
  if (compartment.length === 0) throw new Forbidden(`patient/ scopes need a patient context, which this ${actor.kind} token does not carry`);
  return { actor, compartment };
}
