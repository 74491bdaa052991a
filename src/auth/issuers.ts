// auth/issuers: the trusted token issuers an operator configures (CARNET_ISSUERS, a JSON file),
// checked once at start-up so that a typo stops the server instead of refusing every token.

import fs from 'node:fs';
import { ACTOR_KINDS } from './actor.js';
import type { IssuerConfig } from './verify.js';

export function loadIssuers(file: string | undefined): IssuerConfig[] {
  if (!file) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`CARNET_ISSUERS: cannot read ${file}: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new Error(`CARNET_ISSUERS: ${file} must hold a JSON array of issuers`);
  return parsed.map((entry: unknown, i) => {
    const issuer = entry as IssuerConfig;
    const where = `CARNET_ISSUERS: ${file} entry ${i}`;
    if (!issuer || typeof issuer.issuer !== 'string' || issuer.issuer === '') throw new Error(`${where}: "issuer" is required`);
    if (!issuer.jwksUri === !issuer.jwks) throw new Error(`${where}: give exactly one of "jwksUri" or "jwks"`);
    if (issuer.jwksUri !== undefined && !/^https?:\/\//.test(issuer.jwksUri)) throw new Error(`${where}: "jwksUri" must be an http(s) URL`);
    if (issuer.jwks !== undefined && !Array.isArray(issuer.jwks.keys)) throw new Error(`${where}: "jwks" must be a JWKS ({"keys": [...]})`);
    if (issuer.kind !== undefined && !ACTOR_KINDS.includes(issuer.kind)) throw new Error(`${where}: "kind" must be one of ${ACTOR_KINDS.join(', ')}`);
    if (issuer.firstPartyClients !== undefined && !(Array.isArray(issuer.firstPartyClients) && issuer.firstPartyClients.every((c) => typeof c === 'string' && c !== ''))) {
      throw new Error(`${where}: "firstPartyClients" must be a list of client ids`);
    }
    return issuer;
  });
}
