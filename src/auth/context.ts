// auth/context: what the auth routes and the request hook need, built once by main.ts (or a test).

import type { ClientRegistry } from '../store/port.js';
import type { SigningKey } from './keys.js';
import type { TokenVerifier } from './verify.js';

export interface AuthContext {
  clients: ClientRegistry;
  /** Signs the access tokens of the backend-services token endpoint. */
  signingKey: SigningKey;
  /** The development issuer's key, when development tokens are accepted (NODE_ENV is not production). */
  developmentKey?: SigningKey;
  /** `iss` of Carnet's own access tokens: the server origin + /auth. */
  issuerUrl(): string;
  /** The token endpoint URL: the `aud` client assertions must carry. */
  tokenEndpoint(): string;
  /** The FHIR base URL: the `aud` of every access token Carnet accepts. */
  audience(): string;
  /** Lifetime of backend-services access tokens, in seconds. */
  accessTokenTtl: number;
  verifier: TokenVerifier;
}

/** The development issuer: tokens minted by `npm run token`. */
export const DEVELOPMENT_ISSUER = 'urn:carnet:development';

/** The origin + /auth of a FHIR base URL ending in /fhir. */
export function authBase(fhirBase: string): string {
  return `${fhirBase.replace(/\/fhir$/, '')}/auth`;
}
