// auth/app-tokens: a patient's token issued to an app of the catalogue (its `client_id`, or `azp`)
// works only while the patient's grant of that app exists, and only within the app's registered
// scopes. Checked on every request, after the verified-token cache: the cache remembers who the
// token speaks for, never that the app is still granted. Whether it is granted is the consent
// policy's answer (a Consent, policy/consents.ts), passed in as `granted`.

import type { ClientRegistry } from '../store/port.js';
import type { Actor } from './actor.js';
import { formatGrant, parseScopes } from './scopes.js';
import { intersectScopes } from './token-endpoint.js';
import { TokenRejected } from './verify.js';

export interface AppGate {
  clients: ClientRegistry;
  /** Whether the patient has granted the app now (read from the store, coherent across processes). */
  granted(patientId: string, clientId: string): Promise<boolean>;
}

/**
 * The Actor a request runs as. A patient or representative token naming a client is an app's:
 * the client must be a certified patient app of the catalogue, granted by the patient (for a
 * representative, by each patient it then acts for: those not granting it are dropped), and the
 * token's scopes are narrowed to the app's registered ones. Otherwise 401 (TokenRejected).
 * Any other token is answered unchanged.
 */
export async function admitAppToken(actor: Actor, gate: AppGate): Promise<Actor> {
  if ((actor.kind !== 'patient' && actor.kind !== 'representative') || actor.clientId === undefined) return actor;
  const clientId = actor.clientId;
  const client = await gate.clients.get(clientId);
  if (!client || !client.certified || client.kind !== 'patient-app') throw new TokenRejected('the token was issued to an app that is not a certified patient app of the catalogue');
  const scope = actor.grants.map(formatGrant).join(' ');
  // Both contexts a patient app may hold (auth/clients.ts); each intersected within itself.
  const grants = parseScopes((['patient', 'user'] as const).flatMap((context) => intersectScopes(scope, client.scopes, context).granted).join(' '));
  if (actor.kind === 'patient') {
    if (!(await gate.granted(actor.patientId, clientId))) throw new TokenRejected('the patient has not granted this app access to their record, or has revoked it');
    return { ...actor, grants };
  }
  const patientIds: string[] = [];
  for (const patientId of actor.patientIds) if (await gate.granted(patientId, clientId)) patientIds.push(patientId);
  if (patientIds.length === 0) throw new TokenRejected('no patient this token acts for has granted this app access, or all have revoked it');
  return { ...actor, grants, patientIds };
}
