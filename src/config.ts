// config: the typed configuration, read once from the environment at start-up.
// Knows environment variable names and defaults; nothing else reads process.env.

import path from 'node:path';
import { parseAllowList } from './notify/rest-hook.js';

export type StoreKind = { kind: 'sqlite'; dataDir: string } | { kind: 'mongodb'; uri: string; serverSelectionTimeoutMS: number };

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  store: StoreKind;
  baseUrl: string;
  /** Whether CARNET_BASE_URL was given (else baseUrl is derived from HOST and PORT). */
  baseUrlSet: boolean;
  /** Largest request body accepted, in bytes (413 above it). */
  bodyLimit: number;
  /** Largest body of a Bundle pushed to the base (ITI-65) and of Binary content, in bytes. */
  bundleBodyLimit: number;
  /** SQLite durability: 'normal' survives a process crash (kill -9); 'full' also survives power loss. */
  sync: 'normal' | 'full';
  logLevel: string;
  /** JSON file listing the trusted token issuers (docs/auth.md), if any. */
  issuersFile?: string;
  /** NODE_ENV=production: development tokens are refused. */
  production: boolean;
  /** Lifetime of the access tokens Carnet issues (backend services), in seconds. */
  accessTokenTtl: number;
  /** Cache verified tokens until they expire (CARNET_TOKEN_CACHE=off only to measure its effect). */
  tokenCache: boolean;
  /** Default and maximum page sizes for history (and later search). */
  defaultPageSize: number;
  maxPageSize: number;
  /** Server processes on this machine sharing the port and the store (CARNET_WORKERS; 1: no supervisor). */
  workers: number;
  /** Internal hosts, addresses and CIDR ranges rest-hook subscriptions may reach (none: public addresses only). */
  subscriptionAllow: string[];
  /** Limit of one rest-hook delivery attempt, in milliseconds (a subscription's own timeout may be shorter). */
  subscriptionTimeoutMs: number;
  /** Rest-hook deliveries at once to one origin (scheme, host and port), per process. */
  subscriptionConcurrency: number;
  /** Accesses by one agent to one record of one kind within this many seconds form one notification (docs/notifications.md). */
  notificationWindowSeconds: number;
  /** How often each process looks for new changes to notify and due deliveries, in milliseconds. */
  notificationPollMs: number;
  /** How long a process holds a delivery it took before another may take it (it died), in milliseconds. */
  notificationLeaseMs: number;
}

type Env = Record<string, string | undefined>;

export const DEFAULT_BUNDLE_BODY_LIMIT = 80 * 1024 * 1024;

function integer(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** The allow-list entries, each checked (a host name, an IP address or a CIDR range). */
function allowList(env: Env, name: string): string[] {
  try {
    return [...parseAllowList(env[name] ?? '').entries];
  } catch (error) {
    throw new Error(`${name}: ${(error as Error).message}`);
  }
}

/** Reads the configuration; throws with the variable's name when a value is unusable. */
export function loadConfig(env: Env = process.env): Config {
  const port = integer(env, 'PORT', 8080, 0, 65535);
  const host = env.HOST || '127.0.0.1';
  const dataDir = path.resolve(env.CARNET_DATA_DIR || './data');
  const storeSetting = env.CARNET_STORE || 'sqlite';
  let store: StoreKind;
  if (storeSetting === 'sqlite') store = { kind: 'sqlite', dataDir };
  else if (/^mongodb(\+srv)?:\/\//.test(storeSetting)) store = { kind: 'mongodb', uri: storeSetting, serverSelectionTimeoutMS: integer(env, 'CARNET_MONGODB_TIMEOUT_MS', 10_000, 1) };
  // The setting may hold credentials: the message quotes its scheme only.
  else throw new Error(`CARNET_STORE must be "sqlite" or a mongodb:// URI, got a value starting "${storeSetting.split(':')[0].slice(0, 20)}:"`);
  const baseUrl = (env.CARNET_BASE_URL || `http://${host.includes(':') ? `[${host}]` : host}:${port}/fhir`).replace(/\/+$/, '');
  const sync = env.CARNET_SQLITE_SYNC || 'normal';
  if (sync !== 'normal' && sync !== 'full') throw new Error(`CARNET_SQLITE_SYNC must be "normal" or "full", got "${sync}"`);
  return {
    port,
    host,
    dataDir,
    store,
    baseUrl,
    baseUrlSet: Boolean(env.CARNET_BASE_URL),
    bodyLimit: integer(env, 'CARNET_BODY_LIMIT', 20 * 1024 * 1024, 1024),
    // 80 MiB: a 50 MiB document is 66.7 MiB once base64-encoded in a Bundle or a JSON Binary,
    // and leaves room for the DocumentReference, List and a few smaller documents beside it.
    bundleBodyLimit: integer(env, 'CARNET_BUNDLE_BODY_LIMIT', DEFAULT_BUNDLE_BODY_LIMIT, 1024),
    sync,
    logLevel: env.LOG_LEVEL || 'info',
    ...(env.CARNET_ISSUERS ? { issuersFile: path.resolve(env.CARNET_ISSUERS) } : {}),
    production: env.NODE_ENV === 'production',
    accessTokenTtl: integer(env, 'CARNET_TOKEN_TTL', 300, 30),
    tokenCache: env.CARNET_TOKEN_CACHE !== 'off',
    defaultPageSize: integer(env, 'CARNET_PAGE_SIZE', 20, 1),
    maxPageSize: integer(env, 'CARNET_MAX_PAGE_SIZE', 1000, 1),
    workers: integer(env, 'CARNET_WORKERS', 1, 1, 64),
    subscriptionAllow: allowList(env, 'CARNET_SUBSCRIPTION_ALLOW'),
    subscriptionTimeoutMs: integer(env, 'CARNET_SUBSCRIPTION_TIMEOUT_MS', 10_000, 100, 120_000),
    subscriptionConcurrency: integer(env, 'CARNET_SUBSCRIPTION_CONCURRENCY', 4, 1, 64),
    notificationWindowSeconds: integer(env, 'CARNET_NOTIFICATION_WINDOW_S', 3600, 1, 7 * 24 * 3600),
    notificationPollMs: integer(env, 'CARNET_NOTIFICATION_POLL_MS', 2_000, 10, 60_000),
    notificationLeaseMs: integer(env, 'CARNET_NOTIFICATION_LEASE_MS', 30_000, 1_000, 600_000),
  };
}
