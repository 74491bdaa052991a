// notify/rest-hook: delivery of a notification Bundle to a rest-hook endpoint: one POST with the
// payload's Content-Type and the subscription's channel.header lines; success is a 2xx answer, and
// nothing else (a redirect is not followed: it is a failure like any other status).
//
// Outbound requests go only where a subscription registered, and never to internal addresses
// unless the operator allows them (CARNET_SUBSCRIPTION_ALLOW, see `parseAllowList`): the endpoint's
// host is resolved (every address), each address is checked, and the connection is made to the
// address that was checked (the request's `lookup` answers with it), so a DNS answer that changes
// between the check and the connection (rebinding) changes nothing. Each attempt has a time limit,
// and each origin a bounded number of attempts at once (`OriginLimiter`), so one slow endpoint
// cannot hold every delivery. The answer's body is read and dropped, up to a small limit.

import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { LookupFunction } from 'node:net';
import type { Bundle } from '@medplum/fhirtypes';
import type { ChannelHeader, PayloadMimeType } from './subscription.js';

/** Address ranges no delivery reaches unless allowed: loopback, private, link-local, unspecified, multicast and reserved. */
const FORBIDDEN: readonly [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network", the unspecified address
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT, shared address space
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], // link-local, cloud metadata services
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, and the broadcast address
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'], // loopback
  ['fc00::', 7, 'ipv6'], // unique local
  ['fe80::', 10, 'ipv6'], // link-local
  ['ff00::', 8, 'ipv6'], // multicast
];

const forbidden = new net.BlockList();
for (const [address, prefix, type] of FORBIDDEN) forbidden.addSubnet(address, prefix, type);

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return net.isIPv6(address) ? 'ipv6' : 'ipv4';
}

/** Whether an IP address is internal (loopback, private, link-local, unspecified, multicast, reserved); IPv4-mapped IPv6 counts as its IPv4. */
export function isInternalAddress(address: string): boolean {
  return forbidden.check(address, familyOf(address));
}

/** The operator's exceptions: host names, IP addresses and CIDR ranges deliveries may reach even when internal. */
export interface AllowList {
  /** Host names, lower case. */
  readonly hosts: ReadonlySet<string>;
  /** Addresses and ranges. */
  readonly addresses: net.BlockList;
  /** The entries as given. */
  readonly entries: readonly string[];
}

/**
 * Parses the allow-list setting: entries separated by commas or spaces, each a host name
 * (`hooks.internal`), an IP address (`127.0.0.1`, `::1`) or a CIDR range (`10.0.0.0/8`, `fd00::/8`).
 * Throws an Error naming a bad entry.
 */
export function parseAllowList(setting: string | readonly string[] = ''): AllowList {
  const entries = (typeof setting === 'string' ? setting.split(/[\s,]+/) : [...setting]).map((e) => e.trim()).filter((e) => e !== '');
  const hosts = new Set<string>();
  const addresses = new net.BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = (slash >= 0 ? entry.slice(0, slash) : entry).replace(/^\[|\]$/g, '');
    if (net.isIP(address)) {
      const type = familyOf(address);
      if (slash < 0) {
        addresses.addAddress(address, type);
        continue;
      }
      const prefix = Number(entry.slice(slash + 1));
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) throw new Error(`"${entry}" is not a CIDR range`);
      addresses.addSubnet(address, prefix, type);
    } else if (slash < 0 && /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(entry)) {
      hosts.add(entry.toLowerCase().replace(/\.$/, ''));
    } else {
      throw new Error(`"${entry}" is not a host name, an IP address or a CIDR range`);
    }
  }
  return { hosts, addresses, entries };
}

/** No exception: only public addresses are reached. */
export const NOTHING_ALLOWED: AllowList = parseAllowList('');

/** Resolves a host name to every address it has (dns.lookup, as the system resolves it). */
export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/** A delivery refused before any connection: the endpoint resolves to an address that is not allowed, or does not resolve. */
export class EndpointRefused extends Error {}

/** A checked destination: the address to connect to, and its family. */
export interface Destination {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves an endpoint's host and checks every address it has: one internal address that the
 * allow-list does not cover refuses the endpoint. Returns the address to connect to (the first).
 */
export async function checkEndpoint(endpoint: string | URL, allow: AllowList, resolve: Resolver = systemResolver): Promise<Destination> {
  const url = typeof endpoint === 'string' ? new URL(endpoint) : endpoint;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new EndpointRefused(`${url.protocol} endpoints are not supported`);
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const hostAllowed = allow.hosts.has(host.replace(/\.$/, ''));
  let found: { address: string; family: number }[];
  if (net.isIP(host)) found = [{ address: host, family: net.isIP(host) }];
  else {
    try {
      found = await resolve(host);
    } catch (error) {
      throw new EndpointRefused(`${host} does not resolve (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  if (found.length === 0) throw new EndpointRefused(`${host} does not resolve`);
  if (!hostAllowed) {
    for (const { address } of found) {
      if (isInternalAddress(address) && !allow.addresses.check(address, familyOf(address))) {
        throw new EndpointRefused(`${host} resolves to ${address}, an internal address (allow it in CARNET_SUBSCRIPTION_ALLOW if it is meant)`);
      }
    }
  }
  return { address: found[0].address, family: net.isIPv6(found[0].address) ? 6 : 4 };
}

/** At most `perOrigin` tasks at once per origin; the others wait their turn, in order. */
export class OriginLimiter {
  private readonly slots = new Map<string, { active: number; waiting: (() => void)[] }>();
  constructor(readonly perOrigin = 4) {
    if (!Number.isInteger(perOrigin) || perOrigin < 1) throw new Error('perOrigin must be a positive integer');
  }

  async run<T>(origin: string, task: () => Promise<T>): Promise<T> {
    let slot = this.slots.get(origin);
    if (!slot) this.slots.set(origin, (slot = { active: 0, waiting: [] }));
    if (slot.active >= this.perOrigin) await new Promise<void>((resolve) => slot!.waiting.push(resolve));
    else slot.active++;
    try {
      return await task();
    } finally {
      const next = slot.waiting.shift();
      // The slot passes to the next waiter as it is; the last one out forgets the origin.
      if (next) next();
      else if (--slot.active === 0) this.slots.delete(origin);
    }
  }

  /** Tasks running for an origin (for tests and metrics). */
  active(origin: string): number {
    return this.slots.get(origin)?.active ?? 0;
  }
}

export interface DeliverOptions {
  /** The limit of one attempt, from connecting to the end of the answer. */
  timeoutMs: number;
  allow: AllowList;
  /** The payload's MIME type (Subscription.channel.payload); application/fhir+json when absent. */
  mimeType?: PayloadMimeType;
  /** Shared by every delivery of a process, so that the per-origin bound holds; none: no bound. */
  limiter?: OriginLimiter;
  /** Host name resolution (tests inject one); dns.lookup when absent. */
  resolve?: Resolver;
}

export type DeliveryResult =
  | { ok: true; status: number; address: string; ms: number }
  /**
   * refused: the endpoint is not allowed (retrying will not help until the setting changes);
   * timeout, network: the attempt failed on the way; status: the endpoint answered non-2xx.
   */
  | { ok: false; reason: 'refused' | 'timeout' | 'network' | 'status'; status?: number; message: string; ms: number };

/** How much of an answer's body is read before the connection is dropped. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** POSTs a notification Bundle to a rest-hook endpoint; never throws (the result says what happened). */
export async function deliver(endpoint: string, headers: readonly ChannelHeader[], bundle: Bundle, options: DeliverOptions): Promise<DeliveryResult> {
  const url = new URL(endpoint);
  const attempt = () => post(url, headers, bundle, options);
  return options.limiter ? options.limiter.run(url.origin, attempt) : attempt();
}

async function post(url: URL, headers: readonly ChannelHeader[], bundle: Bundle, options: DeliverOptions): Promise<DeliveryResult> {
  const started = Date.now();
  const ms = () => Date.now() - started;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  try {
    let destination: Destination;
    try {
      // The resolution counts in the attempt's time too.
      destination = await Promise.race([
        checkEndpoint(url, options.allow, options.resolve),
        new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(new Error('timeout')), { once: true })),
      ]);
    } catch (error) {
      if (controller.signal.aborted) return { ok: false, reason: 'timeout', message: `no answer within ${options.timeoutMs} ms (resolving ${url.hostname})`, ms: ms() };
      return { ok: false, reason: 'refused', message: (error as Error).message, ms: ms() };
    }
    const body = Buffer.from(JSON.stringify(bundle));
    const sent: Record<string, string | string[]> = {};
    for (const { name, value } of headers) {
      const key = name.toLowerCase();
      const existing = sent[key];
      sent[key] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
    }
    sent['content-type'] = options.mimeType ?? 'application/fhir+json';
    sent['content-length'] = String(body.length);
    sent['user-agent'] ??= 'Carnet subscriptions';
    // The connection goes to the checked address whatever the resolver would answer now; TLS
    // still verifies the certificate against the URL's host name.
    const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
      if ((lookupOptions as dns.LookupOptions).all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, [destination]);
      else callback(null, destination.address, destination.family);
    };
    const status = await new Promise<number>((resolve, reject) => {
      const request = (url.protocol === 'https:' ? https : http).request(url, { method: 'POST', headers: sent, lookup, agent: false, signal: controller.signal }, (response) => {
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) {
            // Enough: the status is known, the rest is not needed.
            response.destroy();
            resolve(response.statusCode ?? 0);
          }
        });
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
        response.on('aborted', () => reject(new Error('the answer was cut short')));
      });
      request.on('error', reject);
      request.end(body);
    }).catch((error: Error) => error);
    if (status instanceof Error) {
      if (controller.signal.aborted) return { ok: false, reason: 'timeout', message: `no complete answer within ${options.timeoutMs} ms`, ms: ms() };
      return { ok: false, reason: 'network', message: status.message, ms: ms() };
    }
    if (status >= 200 && status < 300) return { ok: true, status, address: destination.address, ms: ms() };
    return { ok: false, reason: 'status', status, message: `the endpoint answered ${status}`, ms: ms() };
  } finally {
    clearTimeout(timer);
  }
}
