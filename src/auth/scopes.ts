// auth/scopes: the SMART scope grammar (App Launch 2.0 v2 `patient/Observation.rs`, and v1
// `user/*.read`) as data, and what each FHIR interaction needs.

export type ScopeContext = 'patient' | 'user' | 'system';
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface Grant {
  context: ScopeContext;
  /** A resource type, or '*'. */
  type: string;
  permissions: ReadonlySet<Permission>;
}

// v1 actions as v2 permissions (SMART 2.0 "scopes for requesting clinical data", v1 mapping).
const V1: Record<string, Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ['c', 'r', 'u', 'd', 's'] };
const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$/;

/**
 * The clinical-data grants of a scope string. Other scopes (openid, fhirUser, launch...) grant
 * no data access and are ignored; so are v2 scopes with query restrictions
 * (`patient/Observation.rs?category=...`), which Carnet does not implement: ignoring them can
 * only grant less.
 */
export function parseScopes(scope: string | undefined): Grant[] {
  const grants: Grant[] = [];
  for (const token of (scope ?? '').split(/\s+/)) {
    const match = SCOPE.exec(token);
    if (!match || match[3] === '') continue;
    const [, context, type, action] = match;
    const permissions = new Set<Permission>(V1[action] ?? (action.split('') as Permission[]));
    grants.push({ context: context as ScopeContext, type, permissions });
  }
  return grants;
}

/** The grants that allow `permission` on `type`, in any context. */
export function grantsFor(grants: Grant[], type: string, permission: Permission): Grant[] {
  return grants.filter((g) => (g.type === '*' || g.type === type) && g.permissions.has(permission));
}

export function formatGrant(grant: Grant): string {
  return `${grant.context}/${grant.type}.${['c', 'r', 'u', 'd', 's'].filter((p) => grant.permissions.has(p as Permission)).join('')}`;
}
