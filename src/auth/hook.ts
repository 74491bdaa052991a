// auth/hook: every route needs a verified bearer token, except the routes marked public (the
// CapabilityStatement, SMART discovery, the token endpoint, Carnet's keys and the app catalogue).
// The verified Actor is attached to the request; nothing later reads the token.
//
// Decided on the route the router matched, never on the URL's text: the router decodes the path
// before it matches (/%66hir/Patient is /fhir/Patient), so a test of the raw URL let encoded paths
// reach the FHIR handlers without a token. A request no route matches gets the not-found handler's
// 404, which serves nothing.

import type { FastifyInstance } from 'fastify';
import type { Actor } from './actor.js';
import type { TokenVerifier } from './verify.js';
import { TokenRejected } from './verify.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor?: Actor;
  }
  interface FastifyContextConfig {
    /** Anyone may call the route without a bearer token. Absent: a token is required. */
    public?: boolean;
  }
}

/** The config of a route anyone may call without a bearer token: `{ config: PUBLIC_ROUTE }`. */
export const PUBLIC_ROUTE = { public: true };

/**
 * `admit` runs on every request after the verified (possibly cached) Actor is known: what may
 * change while a token lives (an app's grant, auth/app-tokens.ts) is checked there, never cached.
 */
export function registerAuthHook(app: FastifyInstance, verifier: TokenVerifier, admit: (actor: Actor) => Promise<Actor> = async (actor) => actor): void {
  app.decorateRequest('actor', undefined);
  app.addHook('onRequest', async (request) => {
    if (request.is404 || request.routeOptions.config.public === true) return;
    try {
      request.actor = await admit(await verifier.actorOf(request.headers.authorization));
    } catch (error) {
      // The reason is logged; the token never is.
      if (error instanceof TokenRejected) request.log.info({ reason: error.reason }, 'token refused');
      throw error;
    }
  });
}
