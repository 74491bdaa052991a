// auth/hook: every request under the FHIR base needs a verified bearer token, except the public
// discovery endpoints. The verified Actor is attached to the request; nothing later reads the token.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Actor } from './actor.js';
import type { TokenVerifier } from './verify.js';
import { TokenRejected } from './verify.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor?: Actor;
  }
}

/** Paths under the base that anyone may GET: the CapabilityStatement and SMART discovery. */
const PUBLIC = new Set(['/metadata', '/.well-known/smart-configuration']);

function isPublic(request: FastifyRequest, prefix: string): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  const path = request.url.split('?')[0].slice(prefix.length).replace(/\/+$/, '');
  return PUBLIC.has(path);
}

export function registerAuthHook(app: FastifyInstance, verifier: TokenVerifier, prefix = '/fhir'): void {
  app.decorateRequest('actor', undefined);
  app.addHook('onRequest', async (request) => {
    const url = request.url;
    if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) return;
    if (isPublic(request, prefix)) return;
    try {
      request.actor = await verifier.actorOf(request.headers.authorization);
    } catch (error) {
      // The reason is logged; the token never is.
      if (error instanceof TokenRejected) request.log.info({ reason: error.reason }, 'token refused');
      throw error;
    }
  });
}
