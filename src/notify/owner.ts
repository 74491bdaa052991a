// notify/owner: whose a Subscription is. The owner's identity when they wrote it (the actor of their
// token: kind, ids, profession, organisation, scopes) is kept on the Subscription by the server, in
// an extension the server alone sets, so that every delivery is decided, by any process, for the
// owner as the consent policy sees them. A subscription never carries emergency access: its
// purpose of use is ordinary care, whatever the token that created it.

import type { Subscription } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { formatGrant, parseScopes } from '../auth/scopes.js';

export const OWNER_URL = 'https://carnet.example.org/fhir/StructureDefinition/subscription-owner';

/** The subscription with its owner set to `actor` (any owner extension the client sent is replaced). */
export function withOwner<T extends Subscription>(subscription: T, actor: Actor): T {
  const { grants, ...rest } = actor.kind === 'practitioner' ? { ...actor, purposeOfUse: 'TREAT' as const } : actor;
  // The scopes as the token gave them (a Grant's permissions are a Set, which JSON does not keep).
  const owner = { ...rest, scope: grants.map(formatGrant).join(' ') };
  const others = (subscription.extension ?? []).filter((e) => e.url !== OWNER_URL);
  return { ...subscription, extension: [...others, { url: OWNER_URL, valueString: JSON.stringify(owner) }] };
}

/** The owner the server recorded, or undefined when there is none (not written through the server). */
export function ownerOf(subscription: Subscription): Actor | undefined {
  const value = subscription.extension?.find((e) => e.url === OWNER_URL)?.valueString;
  if (!value) return undefined;
  try {
    const { scope, ...actor } = JSON.parse(value) as Omit<Actor, 'grants'> & { scope?: unknown };
    return actor && typeof actor === 'object' && typeof actor.kind === 'string' && typeof scope === 'string' ? ({ ...actor, grants: parseScopes(scope) } as Actor) : undefined;
  } catch {
    return undefined;
  }
}
