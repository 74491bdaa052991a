// conformance/runner: runs one TestScript against a FHIR server over HTTP and answers its
// TestReport. setup (after autocreate fixtures), each test, then teardown (before autodelete);
// a failed setup skips the tests, a failed action skips the rest of its test, teardown always runs.

import fs from 'node:fs';
import path from 'node:path';
import type { ActionResult, Action, Assert, Exchange, Operation, ReportAction, TestReport, TestScript } from './types.js';
import { evaluateAssert, mediaType } from './asserts.js';
import { substitute, substituteDeep, type Supplied, Variables } from './variables.js';

export type Fetch = (url: string, init: { method: string; headers: Record<string, string>; body?: string | Uint8Array }) => Promise<Response>;

/** The platform's fetch, as a Fetch. */
export const platformFetch: Fetch = (url, init) => fetch(url, init as RequestInit);

export interface RunOptions {
  /** The FHIR base URL (no trailing slash). */
  base: string;
  /** Variables supplied by the runner (tokens, run-id, client-assertion...). */
  variables?: Record<string, Supplied>;
  /** The bearer token of operations with no Authorization requestHeader, and of `token-*` no one supplied. */
  token?: string;
  /** The TestScript's file: local fixture references are relative to its folder. */
  scriptFile?: string;
  fetch?: Fetch;
  /** The clock of TestReport.issued (tests). */
  now?: () => Date;
}

export const ENGINE = 'urn:carnet:conformance-runner';
export const FORM = 'application/x-www-form-urlencoded';

/** HTTP method of each testscript-operation-codes code, when the operation names no method. */
const METHODS: Record<string, string> = {
  read: 'GET',
  vread: 'GET',
  search: 'GET',
  history: 'GET',
  capabilities: 'GET',
  create: 'POST',
  transaction: 'POST',
  batch: 'POST',
  update: 'PUT',
  updateCreate: 'PUT',
  patch: 'PATCH',
  delete: 'DELETE',
  deleteCondSingle: 'DELETE',
  deleteCondMultiple: 'DELETE',
};

type JsonResource = Record<string, unknown> & { resourceType?: string; id?: string };

const FHIR_MEDIA = /^application\/fhir\+(json|xml)$|^application\/(json|xml)$/;

function headersOf(response: Response): Record<string, string> {
  const out: Record<string, string> = {};
  response.headers.forEach((value, key) => (out[key.toLowerCase()] = value));
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function loadFixture(script: TestScript, reference: string, scriptFile?: string): JsonResource {
  if (reference.startsWith('#')) {
    const found = script.contained?.find((r) => r.id === reference.slice(1));
    if (!found) throw new Error(`fixture ${reference}: no contained resource with that id`);
    const { id: _, ...copy } = found;
    // A contained resource's id is only its local name: the server assigns or the fixture sets it.
    return (found.resourceType === 'Binary' || found.resourceType === 'Parameters' ? copy : found) as JsonResource;
  }
  if (!scriptFile) throw new Error(`fixture ${reference}: a file reference needs the TestScript's location`);
  const file = path.resolve(path.dirname(scriptFile), reference);
  if (!fs.existsSync(file)) throw new Error(`fixture ${reference}: no file ${file}`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as JsonResource;
}

/** The state of one run: fixtures, kept responses, the latest exchange. */
class Run {
  readonly fixtures = new Map<string, JsonResource>();
  readonly responses = new Map<string, Exchange>();
  /** Resources the runner created for autocreate fixtures: fixture id to `Type/id`. */
  readonly created = new Map<string, string>();
  latest: Exchange | undefined;
  readonly variables: Variables;
  private readonly fetch: Fetch;

  constructor(
    readonly script: TestScript,
    readonly options: RunOptions,
  ) {
    this.fetch = options.fetch ?? platformFetch;
    this.variables = new Variables(
      script.variable ?? [],
      options.variables ?? {},
      { body: (id) => this.body(id), exchange: (id) => this.responses.get(id), latest: () => this.latest },
      options.token,
    );
  }

  body(id: string): unknown {
    return this.responses.get(id)?.json ?? this.fixtures.get(id);
  }

  /** `Type/id` of what targetId names: a created fixture, a kept response (Location or body), a fixture. */
  target(id: string): string {
    const created = this.created.get(id);
    if (created) return created;
    const exchange = this.responses.get(id);
    const location = exchange?.headers['location'] ?? exchange?.headers['content-location'];
    if (location) return this.relative(location).replace(/\/_history\/[^/]+$/, '');
    const resource = (exchange?.json ?? this.fixtures.get(id)) as JsonResource | undefined;
    if (!resource?.resourceType || !resource.id) throw new Error(`targetId ${id}: no resource id known`);
    return `${resource.resourceType}/${resource.id}`;
  }

  private relative(url: string): string {
    return url.startsWith(this.options.base + '/') ? url.slice(this.options.base.length + 1) : url.replace(/^https?:\/\/[^/]+\/[^/]*\/?/, '');
  }

  private url(op: Operation, resource: string | undefined, params: string | undefined): string {
    const base = this.options.base;
    const code = op.type?.code;
    if (code === 'capabilities') return `${base}/metadata`;
    if (code === 'transaction' || code === 'batch') return base;
    if (params !== undefined) return `${base}/${resource ?? ''}${params}`;
    if (op.targetId !== undefined) {
      const target = this.target(op.targetId);
      return `${base}/${target}${code === 'history' ? '/_history' : ''}`;
    }
    if ((code === 'update' || code === 'updateCreate') && op.sourceId !== undefined) {
      const source = this.body(op.sourceId) as JsonResource | undefined;
      if (source?.id) return `${base}/${source.resourceType}/${source.id}`;
    }
    return resource ? `${base}/${resource}` : base;
  }

  /** The body of an operation with a sourceId: FHIR JSON, a form (a Parameters fixture), raw bytes (a Binary fixture). */
  private async requestBody(op: Operation, contentType: string): Promise<{ body: string | Uint8Array; parsed: unknown }> {
    const source = this.body(op.sourceId!) as JsonResource | undefined;
    if (source === undefined) throw new Error(`sourceId ${op.sourceId}: no such fixture or response`);
    const resource = await substituteDeep(source, this.variables.lookup);
    if (contentType === FORM && resource.resourceType === 'Parameters') {
      const form = new URLSearchParams();
      for (const p of (resource.parameter ?? []) as Array<Record<string, unknown>>) {
        const value = Object.entries(p).find(([k]) => k.startsWith('value'))?.[1];
        form.append(String(p.name), String(value ?? ''));
      }
      return { body: form.toString(), parsed: resource };
    }
    if (!FHIR_MEDIA.test(contentType) && resource.resourceType === 'Binary') {
      const raw = Buffer.from(String(resource.data ?? ''), 'base64');
      return { body: raw, parsed: resource };
    }
    return { body: JSON.stringify(resource), parsed: resource };
  }

  async perform(op: Operation): Promise<Exchange> {
    const lookup = this.variables.lookup;
    const code = op.type?.code;
    const sourceType = op.sourceId !== undefined ? (this.body(op.sourceId) as JsonResource | undefined)?.resourceType : undefined;
    const method = (op.method ?? METHODS[code ?? ''] ?? (op.sourceId !== undefined ? 'POST' : 'GET')).toUpperCase();
    const params = op.params !== undefined ? await substitute(op.params, lookup) : undefined;
    let url: string;
    if (op.url !== undefined) {
      const given = await substitute(op.url, lookup);
      url = /^https?:\/\//.test(given) ? given : `${this.options.base}/${given.replace(/^\//, '')}`;
    } else {
      url = this.url(op, op.resource ?? sourceType, params);
    }
    const headers: Record<string, string> = { accept: mediaType(op.accept ?? 'json') };
    let body: string | Uint8Array | undefined;
    let parsed: unknown;
    if (op.sourceId !== undefined && method !== 'GET' && method !== 'DELETE' && method !== 'HEAD') {
      const source = this.body(op.sourceId) as JsonResource | undefined;
      const contentType = mediaType(op.contentType ?? (source?.resourceType === 'Binary' && source.contentType ? String(source.contentType) : 'json'));
      ({ body, parsed } = await this.requestBody(op, contentType));
      headers['content-type'] = contentType;
    }
    let authorization = false;
    for (const h of op.requestHeader ?? []) {
      const value = await substitute(h.value, lookup);
      if (h.field.toLowerCase() === 'authorization') {
        authorization = true;
        // An empty Authorization (e.g. "Bearer ${token-none}" with token-none "") sends none.
        if (value.replace(/^bearer\s*/i, '') === '') continue;
      }
      headers[h.field.toLowerCase()] = value;
    }
    if (!authorization && this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const response = await this.fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    const exchange: Exchange = { method, url, status: response.status, requestHeaders: headers, requestBody: parsed, headers: headersOf(response), body: text, json: parseJson(text) };
    this.latest = exchange;
    if (op.responseId !== undefined) this.responses.set(op.responseId, exchange);
    if (op.requestId !== undefined) this.responses.set(op.requestId, { ...exchange, json: parsed });
    return exchange;
  }

  async operation(op: Operation): Promise<ActionResult> {
    try {
      const x = await this.perform(op);
      return { result: 'pass', message: `${op.label ?? op.description ?? op.type?.code ?? 'operation'}: ${x.method} ${x.url} → ${x.status}` };
    } catch (error) {
      return { result: 'error', message: `${op.label ?? op.description ?? 'operation'}: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  async assert(a: Assert): Promise<ActionResult> {
    let resolved: Assert;
    try {
      resolved = await substituteDeep(a, this.variables.lookup);
    } catch (error) {
      return { result: a.warningOnly ? 'warning' : 'error', message: `${a.label ?? a.description ?? 'assert'}: ${error instanceof Error ? error.message : String(error)}` };
    }
    const exchange = (a.sourceId !== undefined ? this.responses.get(a.sourceId) : undefined) ?? this.latest;
    const result = evaluateAssert(resolved, { exchange, body: (id) => this.body(id) });
    if ((result.result === 'fail' || result.result === 'error') && exchange) {
      result.message = `${result.message} [${exchange.method} ${exchange.url} → ${exchange.status}: ${exchange.body.slice(0, 300)}]`;
    }
    return result;
  }

  async action(a: Action): Promise<ReportAction> {
    if (a.operation) return { operation: await this.operation(a.operation) };
    if (a.assert) return { assert: await this.assert(a.assert) };
    return { operation: { result: 'error', message: 'an action needs an operation or an assert' } };
  }

  /** Runs actions in order; after a failure or an error the rest are skipped. */
  async actions(actions: Action[], skip: boolean): Promise<{ results: ReportAction[]; failed: boolean }> {
    const results: ReportAction[] = [];
    let failed = skip;
    for (const a of actions) {
      if (failed) {
        const label = (a.assert ?? a.operation)?.label ?? (a.assert ?? a.operation)?.description;
        const skipped: ActionResult = { result: 'skip', ...(label ? { message: label } : {}) };
        results.push(a.assert ? { assert: skipped } : { operation: skipped });
        continue;
      }
      const r = await this.action(a);
      results.push(r);
      const result = (r.operation ?? r.assert)!.result;
      if (result === 'fail' || result === 'error') failed = true;
    }
    return { results, failed: failed && !skip };
  }
}

function results(report: TestReport): ActionResult[] {
  const of = (actions: ReportAction[] = []) => actions.map((a) => (a.operation ?? a.assert)!);
  return [...of(report.setup?.action), ...(report.test ?? []).flatMap((t) => of(t.action))];
}

/** Runs `script` and answers its TestReport (result fail when an action failed or erred, warnings aside). */
export async function runTestScript(script: TestScript, options: RunOptions): Promise<TestReport> {
  const run = new Run(script, options);
  const setup: ReportAction[] = [];
  let setupFailed = false;
  try {
    for (const f of script.fixture ?? []) {
      if (f.resource?.reference) run.fixtures.set(f.id, loadFixture(script, f.resource.reference, options.scriptFile));
    }
  } catch (error) {
    setup.push({ operation: { result: 'error', message: error instanceof Error ? error.message : String(error) } });
    setupFailed = true;
  }
  for (const f of setupFailed ? [] : (script.fixture ?? []).filter((f) => f.autocreate)) {
    const resource = run.fixtures.get(f.id);
    const result = await run.operation({ type: { code: 'create' }, resource: resource?.resourceType, sourceId: f.id, responseId: `autocreate-${f.id}`, label: `autocreate ${f.id}` });
    const exchange = run.responses.get(`autocreate-${f.id}`);
    if (exchange && exchange.status >= 300) Object.assign(result, { result: 'error', message: `${result.message}: ${exchange.body.slice(0, 300)}` });
    else if (exchange) run.created.set(f.id, run.target(`autocreate-${f.id}`));
    setup.push({ operation: result });
    if (result.result !== 'pass') setupFailed = true;
  }
  const setupRun = await run.actions(script.setup?.action ?? [], setupFailed);
  setup.push(...setupRun.results);
  setupFailed ||= setupRun.failed;

  const tests: NonNullable<TestReport['test']> = [];
  for (const test of script.test ?? []) {
    const { results: actions } = await run.actions(test.action, setupFailed);
    tests.push({ ...(test.name ? { name: test.name } : {}), ...(test.description ? { description: test.description } : {}), action: actions });
  }

  const teardown: Array<{ operation: ActionResult }> = [];
  for (const a of script.teardown?.action ?? []) teardown.push({ operation: await run.operation(a.operation) });
  for (const f of (script.fixture ?? []).filter((f) => f.autodelete && run.created.has(f.id))) {
    teardown.push({ operation: await run.operation({ type: { code: 'delete' }, targetId: f.id, label: `autodelete ${f.id}` }) });
  }

  const report: TestReport = {
    resourceType: 'TestReport',
    ...(script.id ? { id: script.id } : {}),
    name: script.title ?? script.name,
    status: 'completed',
    testScript: { ...(script.url ? { reference: script.url } : script.id ? { reference: `TestScript/${script.id}` } : {}), display: script.name },
    result: 'pass',
    tester: 'Carnet conformance runner',
    issued: (options.now ?? (() => new Date()))().toISOString(),
    participant: [
      { type: 'test-engine', uri: ENGINE, display: 'Carnet conformance runner' },
      { type: 'server', uri: options.base },
    ],
    setup: { action: setup },
    test: tests,
    teardown: { action: teardown },
  };
  const all = results(report);
  report.result = all.some((r) => r.result === 'fail' || r.result === 'error') ? 'fail' : 'pass';
  const asserts = [...(report.setup?.action ?? []), ...tests.flatMap((t) => t.action)].filter((a) => a.assert && a.assert.result !== 'skip');
  const passed = asserts.filter((a) => a.assert!.result === 'pass' || a.assert!.result === 'warning').length;
  report.score = asserts.length === 0 ? 100 : Math.round((passed / asserts.length) * 10000) / 100;
  return report;
}
