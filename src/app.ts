// app: buildApp(deps) -> FastifyInstance. Wires the modules together; does no I/O itself
// (the store is opened by the caller, main.ts or a test).

import { randomBytes, randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Store } from './store/port.js';
import type { FhirContext } from './fhir/context.js';
import { frameworkErrors, registerFhirRoutes } from './fhir/http.js';
import { actorForLog } from './auth/actor.js';
import type { AuthContext } from './auth/context.js';
import { NoPolicyForBenchmark, Policy } from './policy/index.js';
import { provideDocumentBundle } from './mhd/provide.js';
import { GroupCommit } from './audit/group-commit.js';
import { registerAuthHook } from './auth/hook.js';
import { admitAppToken } from './auth/app-tokens.js';
import { registerAuthRoutes } from './auth/routes.js';
import { DEFAULT_BUNDLE_BODY_LIMIT } from './config.js';
import { loadTopics, type TopicRegistry } from './notify/topics.js';
import { WsHub } from './notify/websocket.js';
import { DEFAULT_NOTIFIER, Notifier, type NotifierSettings } from './notify/notifier.js';
import { parseAllowList } from './notify/rest-hook.js';
import { AccountScheduler, type AccountSchedulerSettings } from './accounts/scheduler.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Derives and delivers notifications (notify/notifier); main.ts starts it, tests may drain it. */
    notifier: Notifier;
    /** Opens accounts whose objection window ended and archives closed ones (accounts/); main.ts starts it, tests run it. */
    accounts: AccountScheduler;
  }
}

/** Notification settings (config.ts gives them to main.ts; tests set what they need). */
export type NotificationSettings = Partial<Omit<NotifierSettings, 'allow'>> & { allow?: readonly string[] };

let topics: TopicRegistry | undefined;

export interface AppDeps {
  store: Store;
  /** Token verification and Carnet's own keys: every request under /fhir is authenticated. */
  auth: AuthContext;
  /** The public base of the FHIR API; a function when it is known only after listening (PORT=0). */
  baseUrl: string | (() => string);
  bodyLimit?: number;
  /** Largest body of a Bundle pushed to the base and of Binary content (default 80 MiB). */
  bundleBodyLimit?: number;
  defaultPageSize?: number;
  maxPageSize?: number;
  /** pino options, or false to log nothing (tests). */
  logger?: FastifyServerOptions['logger'];
  /** The clock, replaceable in tests. */
  now?: () => string;
  /** Benchmark harness only (never configuration): run without consent checks and audit records. */
  benchmarkWithoutPolicyAndAudit?: boolean;
  notifications?: NotificationSettings;
  accounts?: Partial<AccountSchedulerSettings>;
  /**
   * The secret keying the hashes of provisional codes (auth/keys loadOrCreateSecret): main.ts
   * loads the data directory's, which every process shares. Absent (a test's single app): a fresh
   * one, which only this app knows.
   */
  accountCodeKey?: Buffer;
}

const REQUEST_ID = /^[A-Za-z0-9\-_.]{1,64}$/;

// Never log health data: requests are logged by route pattern and status only, and the
// redaction list covers credentials should a header ever be logged.
export const LOG_REDACT = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'];

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger: deps.logger ?? false,
    // Fastify's own request lines log URLs; ours (onResponse below) log route patterns only.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimit ?? 20 * 1024 * 1024,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    frameworkErrors,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  });
  const base = deps.baseUrl;
  const now = deps.now ?? (() => new Date().toISOString());
  const ctx: FhirContext = {
    store: deps.store,
    policy: deps.benchmarkWithoutPolicyAndAudit ? new NoPolicyForBenchmark(deps.store, now) : new Policy(deps.store, now),
    audit: !deps.benchmarkWithoutPolicyAndAudit,
    auditLog: new GroupCommit(deps.store, now),
    get baseUrl() {
      return (typeof base === 'function' ? base() : base).replace(/\/+$/, '');
    },
    defaultPageSize: deps.defaultPageSize ?? 20,
    maxPageSize: deps.maxPageSize ?? 1000,
    now,
    transactionChecks: [provideDocumentBundle],
    topics: (topics ??= loadTopics()),
    accountCodeKey: deps.accountCodeKey ?? randomBytes(32),
  };
  const hub = new WsHub({ key: deps.auth.signingKey, baseUrl: () => ctx.baseUrl });
  ctx.hub = hub;
  const { allow, ...notifierSettings } = deps.notifications ?? {};
  const notifier = new Notifier({
    store: ctx.store,
    policy: ctx.policy,
    topics: ctx.topics,
    settings: { ...DEFAULT_NOTIFIER, ...notifierSettings, allow: parseAllowList(allow ?? []) },
    baseUrl: () => ctx.baseUrl,
    now,
    hub,
    ...(ctx.audit ? { auditLog: ctx.auditLog } : {}),
    log: (message) => app.log.warn(message),
  });
  app.decorate('notifier', notifier);
  const accounts = new AccountScheduler({ store: ctx.store, now, baseUrl: () => ctx.baseUrl, ...(deps.accounts ? { settings: deps.accounts } : {}), log: (message) => app.log.warn(message) });
  app.decorate('accounts', accounts);
  app.addHook('onClose', async () => {
    await accounts.stop();
    await notifier.stop();
    hub.close?.();
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // One line per request: method, route pattern, status, time. No URL (it may carry identifiers
  // in its query), no body.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(request.actor ? actorForLog(request.actor) : {}),
      },
      'request',
    );
  });
  // A patient's token issued to an app works only while the patient grants the app (a Consent).
  const appGate = { clients: deps.auth.clients, granted: (patientId: string, clientId: string) => ctx.policy.grantsApp(patientId, clientId) };
  registerAuthHook(app, deps.auth.verifier, (actor) => admitAppToken(actor, appGate));
  registerAuthRoutes(app, deps.auth);
  hub.register(app);
  registerFhirRoutes(app, ctx, '/fhir', { body: deps.bodyLimit ?? 20 * 1024 * 1024, document: deps.bundleBodyLimit ?? DEFAULT_BUNDLE_BODY_LIMIT });
  return app;
}
