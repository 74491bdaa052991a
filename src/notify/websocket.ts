// notify/websocket: the websocket channel of topic-based subscriptions (Subscriptions R5 Backport
// IG): the binding tokens `$get-ws-binding-token` hands out, and the hub of the sockets bound here.
//
// A client gets a token through `$get-ws-binding-token`, connects to the websocket URL the
// operation names, and sends `bind-with-token <token>`; the hub checks the token, binds the socket
// to each subscription it names, and answers each with a handshake Bundle. Notifications are text
// frames holding a notification Bundle (JSON). A binding lasts as long as its token (the client
// binds again with a fresh one, as the IG describes) or the socket.
//
// The token is a short-lived JWT signed with Carnet's signing key (auth/keys: one key file in the
// data directory, so every process of a deployment accepts the tokens of the others). Its `typ`
// and audience (the websocket URL) differ from an access token's, so neither passes for the other.

import fastifyWebsocket from '@fastify/websocket';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { importJWK, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import type { WebSocket } from 'ws';
import { operationOutcome } from '../base/outcome.js';
import { PUBLIC_ROUTE } from '../auth/hook.js';
import { SIGNING_ALG, type SigningKey } from '../auth/keys.js';
import { handshakeBundle } from './bundle.js';

/** The JWT `typ` of a binding token. */
export const BINDING_TOKEN_TYPE = 'carnet-ws-binding+jwt';
/** The claim listing the subscription ids a binding token is good for. */
export const SUBSCRIPTIONS_CLAIM = 'subscriptions';
/** How long a binding token is valid, in seconds. */
export const BINDING_TOKEN_TTL = 300;
/** Where the hub listens, relative to the FHIR base: `<base>/$subscription-websocket`. */
export const WEBSOCKET_OPERATION = '$subscription-websocket';
/** Largest frame a client may send (a bind message is well under it). */
const MAX_FRAME = 16 * 1024;
/** The close code of a refused bind or an unknown message (RFC 6455: policy violation). */
export const CLOSE_POLICY = 1008;

/** The websocket URL of a FHIR base: ws(s)://host/fhir/$subscription-websocket. */
export function websocketUrlOf(baseUrl: string): string {
  return `${baseUrl.replace(/^http/, 'ws')}/${WEBSOCKET_OPERATION}`;
}

export interface BindingToken {
  token: string;
  /** When the token stops being accepted (dateTime). */
  expiration: string;
  subscriptions: string[];
}

/** Signs a binding token for the subscriptions; `issuer` is the FHIR base, `audience` the websocket URL. */
export async function mintBindingToken(
  key: SigningKey,
  options: { issuer: string; audience: string; subscriptions: readonly string[]; ttlSeconds?: number; now?: number },
): Promise<BindingToken> {
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const exp = now + (options.ttlSeconds ?? BINDING_TOKEN_TTL);
  const token = await new SignJWT({ [SUBSCRIPTIONS_CLAIM]: [...options.subscriptions] })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: BINDING_TOKEN_TYPE })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(key.privateKey);
  return { token, expiration: new Date(exp * 1000).toISOString(), subscriptions: [...options.subscriptions] };
}

/** A token that does not bind: its reason is safe to tell the client. */
export class BindingRefused extends Error {}

/** Checks a binding token; returns the subscriptions it names and when it expires (epoch ms), or throws BindingRefused. */
export async function verifyBindingToken(
  key: CryptoKey,
  token: string,
  options: { issuer: string; audience: string; now?: number },
): Promise<{ subscriptions: string[]; expiresAt: number }> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      issuer: options.issuer,
      audience: options.audience,
      typ: BINDING_TOKEN_TYPE,
      algorithms: [SIGNING_ALG],
      requiredClaims: ['exp'],
      ...(options.now !== undefined ? { currentDate: new Date(options.now) } : {}),
    }));
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new BindingRefused(code === 'ERR_JWT_EXPIRED' ? 'the binding token has expired' : `the binding token is not valid (${code ?? 'malformed'})`);
  }
  const listed = payload[SUBSCRIPTIONS_CLAIM];
  if (!Array.isArray(listed) || listed.length === 0 || !listed.every((s) => typeof s === 'string' && s !== '')) throw new BindingRefused('the binding token names no subscription');
  return { subscriptions: listed as string[], expiresAt: (payload.exp as number) * 1000 };
}

/** The output of `$get-ws-binding-token`: token, expiration, one subscription per id, websocket-url. */
export function bindingTokenParameters(binding: BindingToken, websocketUrl: string): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'token', valueString: binding.token },
      { name: 'expiration', valueDateTime: binding.expiration },
      ...binding.subscriptions.map((id) => ({ name: 'subscription', valueString: id })),
      { name: 'websocket-url', valueUrl: websocketUrl },
    ],
  };
}

export interface WsHubOptions {
  /** Carnet's signing key (auth/keys, KEY_NAMES.signing): signs and checks binding tokens. */
  key: SigningKey;
  /** The public FHIR base URL (no trailing slash): the tokens' issuer; the websocket URL derives from it. */
  baseUrl: string | (() => string);
  /** The route's path on this server; `/fhir/$subscription-websocket` by default. */
  path?: string;
  /** The URL clients connect to (behind a proxy); websocketUrlOf(baseUrl) by default. */
  websocketUrl?: string;
  /**
   * The handshake of a subscription a client binds to; undefined refuses the binding (the
   * subscription is gone, off, or not a websocket one). Default: a handshake with status active,
   * empty content.
   */
  handshake?: (subscriptionId: string) => Bundle | undefined | Promise<Bundle | undefined>;
  /** Lifetime of the tokens `issue` signs, in seconds (BINDING_TOKEN_TTL by default). */
  ttlSeconds?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** Called when a socket binds to a subscription, after its handshake: the dispatcher sends what is pending. */
export type BindListener = (subscriptionId: string, socket: WebSocket) => void;

/**
 * The sockets bound to subscriptions in this process. `register` adds the websocket route to a
 * Fastify app; `issue` answers `$get-ws-binding-token`; `send` delivers to this process's sockets.
 */
export class WsHub {
  readonly path: string;
  private readonly options: WsHubOptions;
  private readonly now: () => number;
  /** subscription id -> socket -> when the binding expires (epoch ms). */
  private readonly bindings = new Map<string, Map<WebSocket, number>>();
  private readonly listeners = new Set<BindListener>();
  private readonly sockets = new Set<WebSocket>();
  private publicKey?: Promise<CryptoKey>;

  constructor(options: WsHubOptions) {
    this.options = options;
    this.path = options.path ?? `/fhir/${WEBSOCKET_OPERATION}`;
    this.now = options.now ?? Date.now;
  }

  /** The FHIR base (read when used: with PORT=0 it is known only once the server listens). */
  get base(): string {
    const base = this.options.baseUrl;
    return typeof base === 'function' ? base() : base;
  }

  /** The URL clients connect to. */
  get url(): string {
    return this.options.websocketUrl ?? websocketUrlOf(this.base);
  }

  /** Adds the websocket route (with @fastify/websocket, in its own plugin scope) to `app`; anyone may connect, the token is the proof. */
  register(app: FastifyInstance): void {
    app.register(async (scope) => {
      await scope.register(fastifyWebsocket, { options: { maxPayload: MAX_FRAME } });
      scope.get(this.path, { websocket: true, config: PUBLIC_ROUTE }, (socket) => this.accept(socket));
    });
  }

  /** A binding token for the subscriptions, as the Parameters `$get-ws-binding-token` returns. */
  async issue(subscriptionIds: readonly string[]): Promise<Parameters> {
    const binding = await mintBindingToken(this.options.key, {
      issuer: this.base,
      audience: this.url,
      subscriptions: subscriptionIds,
      ttlSeconds: this.options.ttlSeconds,
      now: this.now(),
    });
    return bindingTokenParameters(binding, this.url);
  }

  /** Registers a listener called on each binding; returns the function that removes it. */
  onBind(listener: BindListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sends a notification Bundle to every open socket bound to the subscription here; returns how many got it. */
  send(subscriptionId: string, bundle: Bundle): number {
    const sockets = this.live(subscriptionId);
    if (sockets.length === 0) return 0;
    const text = JSON.stringify(bundle);
    for (const socket of sockets) socket.send(text);
    return sockets.length;
  }

  /** The subscriptions with at least one live binding in this process. */
  bound(): string[] {
    return [...this.bindings.keys()].filter((id) => this.live(id).length > 0);
  }

  /** Closes every socket (server shutdown). */
  close(): void {
    for (const socket of this.sockets) socket.close(1001, 'server shutting down');
  }

  /** The open sockets of a subscription whose binding has not expired; drops the others. */
  private live(subscriptionId: string): WebSocket[] {
    const bound = this.bindings.get(subscriptionId);
    if (!bound) return [];
    const now = this.now();
    for (const [socket, expiresAt] of bound) if (expiresAt <= now || socket.readyState !== socket.OPEN) bound.delete(socket);
    if (bound.size === 0) this.bindings.delete(subscriptionId);
    return [...bound.keys()];
  }

  private accept(socket: WebSocket): void {
    this.sockets.add(socket);
    socket.on('message', (data, isBinary) => {
      void this.onMessage(socket, isBinary ? '' : data.toString());
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      for (const [id, bound] of this.bindings) {
        bound.delete(socket);
        if (bound.size === 0) this.bindings.delete(id);
      }
    });
  }

  /** Sends an OperationOutcome explaining the refusal, then closes with CLOSE_POLICY and the reason. */
  private refuse(socket: WebSocket, reason: string): void {
    socket.send(JSON.stringify(operationOutcome([{ code: 'security', diagnostics: reason }])));
    // A close reason is at most 123 bytes.
    socket.close(CLOSE_POLICY, Buffer.from(reason).subarray(0, 123).toString());
  }

  private async onMessage(socket: WebSocket, text: string): Promise<void> {
    const match = /^bind-with-token\s+(\S+)\s*$/.exec(text.trim());
    if (!match) return this.refuse(socket, 'expected "bind-with-token <token>"');
    let granted: { subscriptions: string[]; expiresAt: number };
    try {
      this.publicKey ??= importJWK(this.options.key.publicJwk, this.options.key.alg) as Promise<CryptoKey>;
      granted = await verifyBindingToken(await this.publicKey, match[1], { issuer: this.base, audience: this.url, now: this.now() });
    } catch (error) {
      return this.refuse(socket, error instanceof BindingRefused ? error.message : 'the binding token could not be checked');
    }
    for (const id of granted.subscriptions) {
      const handshake = this.options.handshake
        ? await this.options.handshake(id)
        : handshakeBundle({ subscriptionId: id, topic: '', status: 'active', eventsSinceSubscriptionStart: 0 }, { baseUrl: this.base, content: 'empty' });
      if (socket.readyState !== socket.OPEN) return;
      if (!handshake) {
        socket.send(JSON.stringify(operationOutcome([{ code: 'not-found', diagnostics: `Subscription/${id} cannot be bound (it is gone, off, or not a websocket subscription)` }])));
        continue;
      }
      let bound = this.bindings.get(id);
      if (!bound) this.bindings.set(id, (bound = new Map()));
      bound.set(socket, granted.expiresAt);
      socket.send(JSON.stringify(handshake));
      for (const listener of this.listeners) listener(id, socket);
    }
  }
}
