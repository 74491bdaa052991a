// notify/websocket: binding tokens and the hub, on a real Fastify server on 127.0.0.1 with the
// auth hook in place, driven by a real websocket client (ws): bind-with-token, the handshake, send,
// unbinding on close, refusals; and tokens accepted by another process sharing the data directory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { registerAuthHook } from '../../src/auth/hook.js';
import { generateSigningKey, KEY_NAMES, loadOrCreateKey, type SigningKey } from '../../src/auth/keys.js';
import { TokenVerifier } from '../../src/auth/verify.js';
import { authBase } from '../../src/auth/context.js';
import { mintToken } from '../../src/auth/claims.js';
import { statusOf } from '../../src/notify/bundle.js';
import { BINDING_TOKEN_TYPE, CLOSE_POLICY, mintBindingToken, verifyBindingToken, WsHub, type WsHubOptions } from '../../src/notify/websocket.js';
import { importJWK, type CryptoKey, decodeProtectedHeader } from 'jose';

const BASE = 'http://carnet.test/fhir';

/** A server with the auth hook and a hub; returns the hub and the ws:// URL of its route. */
async function serve(t: Test, options: Partial<WsHubOptions> & { key: SigningKey }) {
  const app = Fastify();
  registerAuthHook(app, new TokenVerifier([{ issuer: authBase(BASE), jwks: { keys: [options.key.publicJwk] } }], () => BASE));
  const hub = new WsHub({ baseUrl: BASE, ...options });
  hub.register(app);
  app.get('/fhir/Patient', async () => ({}));
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(async () => {
    hub.close();
    await app.close();
  });
  return { app, hub, url: `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}${hub.path}` };
}

/** A client that queues the frames it receives, and tells how it was closed. */
async function client(url: string) {
  const socket = new WebSocket(url);
  const frames: unknown[] = [];
  const waiting: ((frame: unknown) => void)[] = [];
  socket.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    const next = waiting.shift();
    if (next) next(frame);
    else frames.push(frame);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  return {
    socket,
    closed,
    next: (): Promise<any> => (frames.length > 0 ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiting.push(resolve))),
  };
}

function token(p: Parameters): string {
  return p.parameter!.find((x) => x.name === 'token')!.valueString!;
}

const until = async (test: () => boolean) => {
  for (let i = 0; i < 100 && !test(); i++) await new Promise((r) => setTimeout(r, 10));
};

t.test('$get-ws-binding-token output: token, expiration, subscriptions, websocket-url', async (t) => {
  const key = await generateSigningKey();
  const hub = new WsHub({ key, baseUrl: 'https://carnet.example.org/fhir', now: () => Date.UTC(2026, 0, 1) });
  const p = await hub.issue(['s1', 's2']);
  t.same(p.parameter!.map((x) => x.name), ['token', 'expiration', 'subscription', 'subscription', 'websocket-url']);
  t.equal(p.parameter![1].valueDateTime, '2026-01-01T00:05:00.000Z', 'five minutes');
  t.same(p.parameter!.filter((x) => x.name === 'subscription').map((x) => x.valueString), ['s1', 's2']);
  t.equal(p.parameter![4].valueUrl, 'wss://carnet.example.org/fhir/$subscription-websocket');
  t.equal(decodeProtectedHeader(token(p)).typ, BINDING_TOKEN_TYPE);
});

t.test('bind-with-token: a handshake per subscription, then send reaches the bound sockets; close unbinds', async (t) => {
  const key = await generateSigningKey();
  const handshakes: string[] = [];
  const { hub, url } = await serve(t, { key, handshake: (id) => (handshakes.push(id), id === 'gone' ? undefined : ({ resourceType: 'Bundle', type: 'history', id: `handshake-${id}` } as Bundle)) });
  const binds: string[] = [];
  hub.onBind((id) => binds.push(id));
  const a = await client(url);
  a.socket.send(`bind-with-token ${token(await hub.issue(['s1', 'gone']))}`);
  t.equal((await a.next()).id, 'handshake-s1');
  const refusal = await a.next();
  t.equal(refusal.resourceType, 'OperationOutcome');
  t.match(refusal.issue[0].diagnostics, /Subscription\/gone cannot be bound/);
  t.same(binds, ['s1'], 'onBind after the handshake');
  t.same(hub.bound(), ['s1']);

  const b = await client(url);
  b.socket.send(`bind-with-token ${token(await hub.issue(['s1']))}`);
  await b.next();
  const notification = { resourceType: 'Bundle', type: 'history', id: 'n1' } as Bundle;
  t.equal(hub.send('s1', notification), 2, 'both sockets');
  t.equal((await a.next()).id, 'n1');
  t.equal((await b.next()).id, 'n1');
  t.equal(hub.send('s2', notification), 0, 'nobody bound to s2 here');

  a.socket.close();
  await a.closed;
  await until(() => hub.send('s1', notification) === 1);
  t.equal(hub.send('s1', notification), 1, 'the closed socket is unbound');
  b.socket.close();
  await b.closed;
  await until(() => hub.bound().length === 0);
  t.same(hub.bound(), []);
});

t.test('the default handshake is a handshake notification Bundle', async (t) => {
  const key = await generateSigningKey();
  const { hub, url } = await serve(t, { key });
  const c = await client(url);
  c.socket.send(`bind-with-token ${token(await hub.issue(['s9']))}`);
  const handshake = await c.next();
  t.equal(handshake.type, 'history');
  t.equal(statusOf(handshake)!.parameter!.find((p) => p.name === 'type')!.valueCode, 'handshake');
  c.socket.close();
});

t.test('an invalid token, an expired one, an access token or another message closes the socket with the reason', async (t) => {
  const key = await generateSigningKey();
  const { hub, url } = await serve(t, { key });
  const refused = async (message: string) => {
    const c = await client(url);
    c.socket.send(message);
    const outcome = await c.next();
    const closed = await c.closed;
    t.equal(closed.code, CLOSE_POLICY);
    t.equal(outcome.issue[0].diagnostics, closed.reason, 'the OperationOutcome says what the close reason says');
    return closed.reason;
  };
  t.match(await refused('bind-with-token not-a-jwt'), /binding token is not valid/);
  const expired = await mintBindingToken(key, { issuer: BASE, audience: hub.url, subscriptions: ['s1'], ttlSeconds: 60, now: Date.now() - 120_000 });
  t.match(await refused(`bind-with-token ${expired.token}`), /expired/);
  const other = await generateSigningKey();
  const forged = await mintBindingToken(other, { issuer: BASE, audience: hub.url, subscriptions: ['s1'] });
  t.match(await refused(`bind-with-token ${forged.token}`), /not valid/, 'signed by another key');
  const wrongAudience = await mintBindingToken(key, { issuer: BASE, audience: BASE, subscriptions: ['s1'] });
  t.match(await refused(`bind-with-token ${wrongAudience.token}`), /not valid/, 'an audience other than the websocket URL');
  const access = await mintToken(key, { issuer: authBase(BASE), audience: hub.url, subject: 'someone', ttl: 60, claims: { subscriptions: ['s1'] } });
  t.match(await refused(`bind-with-token ${access}`), /not valid/, 'an access token (typ JWT)');
  t.match(await refused('hello'), /expected "bind-with-token <token>"/);
  t.same(hub.bound(), []);
});

t.test('a binding token is not an access token', async (t) => {
  const key = await generateSigningKey();
  const { app, hub } = await serve(t, { key });
  const answer = await app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${token(await hub.issue(['s1']))}` } });
  t.equal(answer.statusCode, 401);
});

t.test('processes sharing the data directory accept each other\'s tokens', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-ws-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const first = await loadOrCreateKey(dir, KEY_NAMES.signing);
  const second = await loadOrCreateKey(dir, KEY_NAMES.signing);
  const issuing = new WsHub({ key: first, baseUrl: BASE });
  const { hub, url } = await serve(t, { key: second });
  t.equal(issuing.url, hub.url);
  const c = await client(url);
  c.socket.send(`bind-with-token ${token(await issuing.issue(['s1']))}`);
  await c.next();
  t.same(hub.bound(), ['s1']);
  const verified = await verifyBindingToken((await importJWK(second.publicJwk, 'ES256')) as CryptoKey, token(await issuing.issue(['s2'])), { issuer: BASE, audience: hub.url });
  t.same(verified.subscriptions, ['s2']);
  c.socket.close();
});

t.test('a binding ends with its token', async (t) => {
  const key = await generateSigningKey();
  let now = Date.now();
  const { hub, url } = await serve(t, { key, now: () => now, ttlSeconds: 60 });
  const c = await client(url);
  c.socket.send(`bind-with-token ${token(await hub.issue(['s1']))}`);
  await c.next();
  t.same(hub.bound(), ['s1']);
  now += 61_000;
  t.same(hub.bound(), []);
  t.equal(hub.send('s1', { resourceType: 'Bundle', type: 'history' }), 0);
  c.socket.close();
});
