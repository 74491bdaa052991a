// main: start-up. Reads the configuration, opens the store, builds the app, listens, and
// shuts down cleanly on SIGINT/SIGTERM. With CARNET_WORKERS=N (N > 1), this process supervises N
// worker processes that each do all of that (workers.ts). Nothing imports this file.

import cluster from 'node:cluster';
import { loadConfig, type Config } from './config.js';
import { supervise, type ListeningMessage } from './workers.js';
import { buildApp, LOG_REDACT } from './app.js';
import { SqliteStore } from './store/sqlite/index.js';
import { StoreUnavailable, type Store } from './store/port.js';
import { openMongoStore } from './store/mongo/index.js';
import { redacted } from './store/mongo/errors.js';
import { ACCOUNT_CODE_SECRET, KEY_NAMES, loadOrCreateKey, loadOrCreateSecret } from './auth/keys.js';
import { loadMatrix } from './policy/matrix.js';
import { profiles } from './fhir/profiles.js';
import { TokenVerifier } from './auth/verify.js';
import { loadIssuers } from './auth/issuers.js';
import { authBase, DEVELOPMENT_ISSUER, type AuthContext } from './auth/context.js';

async function main(config: Config): Promise<void> {
  const started = performance.now();
  let store: Store;
  let storeLabel: string;
  if (config.store.kind === 'sqlite') {
    store = new SqliteStore({ dataDir: config.store.dataDir, sync: config.sync });
    storeLabel = `sqlite in ${config.store.dataDir} (synchronous=${config.sync})`;
  } else {
    const mongo = await openMongoStore({ uri: config.store.uri, serverSelectionTimeoutMS: config.store.serverSelectionTimeoutMS });
    store = mongo;
    storeLabel = `mongodb database ${mongo.db.databaseName} at ${redacted(config.store.uri)}`;
  }
  // With PORT=0 the base URL is known only once the port is: the app reads it when it answers.
  let baseUrl = config.baseUrl;
  // A broken access matrix stops the server before it listens (the file is the operator's).
  const matrix = loadMatrix();
  // Likewise the profiles (profiles/*.json): compiled once, before the first write needs them.
  const registry = profiles();
  const signingKey = await loadOrCreateKey(config.dataDir, KEY_NAMES.signing);
  const accountCodeKey = await loadOrCreateSecret(config.dataDir, ACCOUNT_CODE_SECRET);
  const developmentKey = config.production ? undefined : await loadOrCreateKey(config.dataDir, KEY_NAMES.development);
  const verifier = new TokenVerifier(loadIssuers(config.issuersFile), () => baseUrl, Date.now, config.tokenCache ? undefined : 0);
  if (developmentKey) verifier.trust({ issuer: DEVELOPMENT_ISSUER, jwks: { keys: [developmentKey.publicJwk] } });
  const auth: AuthContext = {
    clients: store.clients,
    signingKey,
    ...(developmentKey ? { developmentKey } : {}),
    issuerUrl: () => authBase(baseUrl),
    tokenEndpoint: () => `${authBase(baseUrl)}/token`,
    audience: () => baseUrl,
    accessTokenTtl: config.accessTokenTtl,
    verifier,
  };
  const app = buildApp({
    store,
    auth,
    baseUrl: () => baseUrl,
    accountCodeKey,
    bodyLimit: config.bodyLimit,
    bundleBodyLimit: config.bundleBodyLimit,
    defaultPageSize: config.defaultPageSize,
    maxPageSize: config.maxPageSize,
    logger: { level: config.logLevel, redact: LOG_REDACT },
    notifications: { allow: config.subscriptionAllow, timeoutMs: config.subscriptionTimeoutMs, concurrency: config.subscriptionConcurrency, windowMs: config.notificationWindowSeconds * 1000, pollMs: config.notificationPollMs, leaseMs: config.notificationLeaseMs },
  });
  // Handlers first: a supervisor may stop the server the moment it announces itself.
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    await new Promise((resolve) => (app.server.listening ? app.server.close(resolve) : resolve(undefined)));
    await app.close();
    await store.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  // Listen on Fastify's own server rather than app.listen(), which logs a line of its own: the
  // contract is one plain line here, then one log line per request.
  await app.ready();
  // Every process derives and delivers notifications; cursors and leases keep them apart.
  app.notifier.start();
  app.accounts.start();
  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen({ port: config.port, host: config.host }, () => resolve());
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  if (config.port === 0 && !config.baseUrlSet) baseUrl = baseUrl.replace(/:0\/fhir$/, `:${port}/fhir`);
  // Carnet's own access tokens (backend services) are signed by its key, issued as <origin>/auth.
  verifier.trust({ issuer: authBase(baseUrl), jwks: { keys: [signingKey.publicJwk] } });
  const ms = Math.round(performance.now() - started);
  const development = developmentKey ? '; development tokens accepted (NODE_ENV is not production)' : '';
  const line = `Carnet FHIR R4 API listening on http://${config.host}:${port}/fhir (base URL ${baseUrl}), store: ${storeLabel}, access matrix: ${matrix.professions.length} professions, profiles: ${registry.resourceProfiles().length}, trusted issuers: ${verifier.trusted.join(', ')}${development}, ready in ${ms} ms`;
  // A worker tells its supervisor, which prints one line for all of them.
  if (cluster.isWorker && process.send) process.send({ carnet: 'listening', line } satisfies ListeningMessage);
  else process.stdout.write(`${line}\n`);
}

async function start(): Promise<void> {
  const config = loadConfig();
  if (cluster.isPrimary && config.workers > 1) supervise(config.workers);
  else await main(config);
}

start().catch((error: unknown) => {
  process.stderr.write(`Carnet could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  // 69 (EX_UNAVAILABLE): the database could not be reached, a supervisor may retry; 1: fix the set-up.
  process.exit(error instanceof StoreUnavailable ? 69 : 1);
});
