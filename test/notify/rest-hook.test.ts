// notify/rest-hook: deliveries to a real HTTP receiver on 127.0.0.1 (allowed by the allow-list):
// success, non-2xx, timeout, the headers received, the per-origin bound; and the refusals of
// internal destinations the allow-list does not cover, before any connection.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { Bundle } from '@medplum/fhirtypes';
import { checkEndpoint, deliver, isInternalAddress, NOTHING_ALLOWED, OriginLimiter, parseAllowList, type Resolver } from '../../src/notify/rest-hook.js';

const bundle: Bundle = { resourceType: 'Bundle', type: 'history', entry: [] };
const LOCAL = parseAllowList('127.0.0.1');

interface Received {
  method?: string;
  url?: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A receiver answering with `behave(path)`; records what it got and how many requests it held at once. */
async function receiver(t: Test, behave: (url: string) => { status: number; delayMs?: number; location?: string }) {
  const received: Received[] = [];
  const state = { active: 0, peak: 0 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body });
      state.active++;
      state.peak = Math.max(state.peak, state.active);
      const { status, delayMs = 0, location } = behave(req.url ?? '');
      setTimeout(() => {
        state.active--;
        res.writeHead(status, location ? { location } : {}).end('{}');
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.closeIdleConnections?.();
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, received, state };
}

t.test('a 2xx answer is a success: the Bundle is POSTed with the payload type and every channel header', async (t) => {
  const { base, received } = await receiver(t, () => ({ status: 204 }));
  const result = await deliver(`${base}/hook?x=1`, [{ name: 'Authorization', value: 'Bearer abc' }, { name: 'X-Tag', value: 'one' }, { name: 'X-Tag', value: 'two' }], bundle, { timeoutMs: 2000, allow: LOCAL, mimeType: 'application/json' });
  t.match(result, { ok: true, status: 204, address: '127.0.0.1' });
  t.equal(received.length, 1);
  t.equal(received[0].method, 'POST');
  t.equal(received[0].url, '/hook?x=1');
  t.equal(received[0].headers['content-type'], 'application/json');
  t.equal(received[0].headers.authorization, 'Bearer abc');
  t.equal(received[0].headers['x-tag'], 'one, two');
  t.same(JSON.parse(received[0].body), bundle);
  const fhirJson = await deliver(`${base}/hook`, [], bundle, { timeoutMs: 2000, allow: LOCAL });
  t.ok(fhirJson.ok);
  t.equal(received[1].headers['content-type'], 'application/fhir+json', 'application/fhir+json by default');
});

t.test('a non-2xx answer, a redirect included, is a failure with its status; a redirect is not followed', async (t) => {
  const { base, received } = await receiver(t, (url) => (url === '/moved' ? { status: 302, location: '/elsewhere' } : { status: 500 }));
  t.match(await deliver(`${base}/fail`, [], bundle, { timeoutMs: 2000, allow: LOCAL }), { ok: false, reason: 'status', status: 500 });
  t.match(await deliver(`${base}/moved`, [], bundle, { timeoutMs: 2000, allow: LOCAL }), { ok: false, reason: 'status', status: 302 });
  t.same(received.map((r) => r.url), ['/fail', '/moved'], 'nothing went to /elsewhere');
});

t.test('an endpoint slower than the limit is a timeout', async (t) => {
  const { base } = await receiver(t, () => ({ status: 200, delayMs: 1500 }));
  const started = Date.now();
  const result = await deliver(`${base}/slow`, [], bundle, { timeoutMs: 200, allow: LOCAL });
  t.match(result, { ok: false, reason: 'timeout' });
  t.ok(Date.now() - started < 1200, 'the attempt ended at its limit');
});

t.test('a closed port is a network failure', async (t) => {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.match(await deliver(`http://127.0.0.1:${port}/`, [], bundle, { timeoutMs: 2000, allow: LOCAL }), { ok: false, reason: 'network' });
});

t.test('internal destinations are refused unless allowed, before any connection', async (t) => {
  const { base, received } = await receiver(t, () => ({ status: 200 }));
  const port = new URL(base).port;
  for (const endpoint of [`http://127.0.0.1:${port}/`, `http://localhost:${port}/`, 'http://10.1.2.3/hook', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/', `http://[::ffff:127.0.0.1]:${port}/`, 'http://0.0.0.0/', 'http://192.168.1.1/', 'http://172.20.0.1/', 'http://[fd00::1]/', 'http://[fe80::1]/', 'http://224.0.0.1/']) {
    const result = await deliver(endpoint, [], bundle, { timeoutMs: 2000, allow: NOTHING_ALLOWED });
    t.match(result, { ok: false, reason: 'refused', message: /internal address/ }, endpoint);
  }
  t.equal(received.length, 0, 'the receiver got nothing');
  t.match(await deliver(`http://localhost:${port}/`, [], bundle, { timeoutMs: 2000, allow: parseAllowList('localhost') }), { ok: true }, 'a host name in the allow-list');
  t.match(await deliver(`http://127.0.0.1:${port}/`, [], bundle, { timeoutMs: 2000, allow: parseAllowList('127.0.0.0/8') }), { ok: true }, 'a CIDR range in the allow-list');
  t.match(await deliver('http://10.1.2.3/hook', [], bundle, { timeoutMs: 2000, allow: LOCAL }), { ok: false, reason: 'refused' }, 'the allow-list covers only what it names');
});

t.test('the connection goes to the address that was checked, not to a later answer of the resolver', async (t) => {
  const { base, received } = await receiver(t, () => ({ status: 200 }));
  const port = new URL(base).port;
  let calls = 0;
  // The first answer is checked; any later one (a rebinding) would point elsewhere.
  const resolve: Resolver = async () => (calls++ === 0 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }]);
  t.match(await deliver(`http://hooks.carnet.test:${port}/x`, [], bundle, { timeoutMs: 2000, allow: LOCAL, resolve }), { ok: true, address: '127.0.0.1' });
  t.equal(calls, 1, 'resolved once');
  t.equal(received[0].headers.host, `hooks.carnet.test:${port}`, 'the Host header keeps the endpoint host');
  const mixed: Resolver = async () => [{ address: '93.184.216.34', family: 4 }, { address: '127.0.0.1', family: 4 }];
  await t.rejects(checkEndpoint('http://mixed.carnet.test/', NOTHING_ALLOWED, mixed), /127\.0\.0\.1, an internal address/, 'one internal address among public ones refuses');
  await t.rejects(checkEndpoint('http://nowhere.invalid/', NOTHING_ALLOWED), /does not resolve/);
});

t.test('addresses and allow-list entries', async (t) => {
  for (const a of ['127.0.0.1', '10.0.0.1', '172.31.255.255', '192.168.0.1', '169.254.169.254', '0.0.0.0', '::', '::1', 'fc00::1', 'fe80::1', 'ff02::1', '::ffff:10.0.0.1', '224.0.0.1']) t.ok(isInternalAddress(a), a);
  for (const a of ['93.184.216.34', '172.32.0.1', '2606:4700::1111', '8.8.8.8']) t.notOk(isInternalAddress(a), a);
  const allow = parseAllowList(' 127.0.0.1, 10.0.0.0/8 hooks.internal,[::1]');
  t.same(allow.entries, ['127.0.0.1', '10.0.0.0/8', 'hooks.internal', '[::1]']);
  t.ok(allow.hosts.has('hooks.internal'));
  t.ok(allow.addresses.check('10.200.0.1', 'ipv4'));
  t.ok(allow.addresses.check('::1', 'ipv6'));
  t.throws(() => parseAllowList('10.0.0.0/40'), /not a CIDR range/);
  t.throws(() => parseAllowList('https://x'), /not a host name/);
});

t.test('at most N deliveries at once per origin; another origin is not held up', async (t) => {
  const slow = await receiver(t, () => ({ status: 200, delayMs: 300 }));
  const fast = await receiver(t, () => ({ status: 200 }));
  const limiter = new OriginLimiter(2);
  const options = { timeoutMs: 5000, allow: LOCAL, limiter };
  const slowOnes = Array.from({ length: 5 }, () => deliver(`${slow.base}/`, [], bundle, options));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(limiter.active(new URL(slow.base).origin), 2);
  const started = Date.now();
  t.match(await deliver(`${fast.base}/`, [], bundle, options), { ok: true });
  t.ok(Date.now() - started < 250, 'the fast origin did not wait for the slow one');
  const results = await Promise.all(slowOnes);
  t.ok(results.every((r) => r.ok));
  t.equal(slow.state.peak, 2, 'the slow receiver never held more than 2');
  t.equal(limiter.active(new URL(slow.base).origin), 0, 'an idle origin is forgotten');
});
