// The conformance runner end to end: every TestScript of conformance/testscripts passes against
// Carnet (in-process, the runner's fetch going through fastify's inject), and a deliberately failing
// TestScript run by `npm run conformance` against a Carnet it starts yields a failed TestReport,
// reports on disk, and exit status 1.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { exportJWK, generateKeyPair } from 'jose';
import { randomUUID } from 'node:crypto';
import { registerClient } from '../../src/auth/clients.js';
import { ACTORS, DEFAULT_ACTOR, SMART_CLIENT_SCOPES, smartVariables } from '../../src/conformance/actors.js';
import type { Fetch } from '../../src/conformance/runner.js';
import { findScripts, runScripts } from '../../src/conformance/suite.js';
import type { TestReport } from '../../src/conformance/types.js';
import type { DevelopmentActor } from '../../src/auth/dev-tokens.js';
import { BASE, PROJECT, testServer, type TestActor } from '../helpers.js';

/** The runner's actors in the test issuer's vocabulary. */
function testActor(actor: DevelopmentActor): TestActor {
  switch (actor.kind) {
    case 'system':
      return { kind: 'system', client: actor.clientId };
    case 'patient':
      return { kind: 'patient', patient: actor.patientId };
    case 'practitioner':
      return { kind: 'practitioner', practitioner: actor.practitionerId, profession: actor.profession };
    default:
      throw new Error(`no test actor for ${actor.kind}`);
  }
}

/** Failed actions of a report, for a readable failure. */
const failures = (report: TestReport) =>
  [...(report.setup?.action ?? []), ...(report.test ?? []).flatMap((x) => x.action)].map((a) => a.operation ?? a.assert).filter((r) => r && r.result !== 'pass' && r.result !== 'warning');

t.test("Carnet's TestScripts all pass against Carnet", async (t) => {
  const server = await testServer();
  t.teardown(() => server.close());
  const inject: Fetch = async (url, init) => {
    const u = new URL(url);
    const res = await server.app.inject({ method: init.method as 'GET', url: u.pathname + u.search, headers: init.headers, ...(init.body !== undefined ? { payload: Buffer.from(init.body) } : {}) });
    const headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : String(v));
    const empty = res.statusCode === 204 || res.statusCode === 304 || init.method === 'HEAD';
    return new Response(empty ? null : new Uint8Array(res.rawPayload), { status: res.statusCode, headers });
  };
  const tokens: Record<string, string> = {};
  for (const [name, { actor, scope }] of Object.entries(ACTORS)) tokens[name] = await server.token(testActor(actor), scope);
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  const kid = randomUUID();
  const client = await registerClient(server.store.clients, {
    name: 'conformance',
    kind: 'system',
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES384' }] },
    scopes: SMART_CLIENT_SCOPES,
    certified: true,
  });
  const variables = {
    'run-id': randomUUID(),
    'run-number': String(Date.now()),
    'token-none': '',
    ...tokens,
    ...smartVariables(BASE, { clientId: client.id, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES384' } }, inject),
  };
  const scripts = findScripts([path.join(PROJECT, 'conformance/testscripts')]);
  t.ok(scripts.length >= 8, `${scripts.length} TestScripts`);
  const outcomes = await runScripts(scripts, { base: BASE, variables, token: tokens[DEFAULT_ACTOR], fetch: inject });
  for (const { file, report } of outcomes) {
    t.equal(report.result, 'pass', `${path.basename(file)}: ${JSON.stringify(failures(report)).slice(0, 1500)}`);
    t.ok((report.test ?? []).length > 0, `${path.basename(file)} has tests`);
  }
});

t.test('a failing TestScript, run by npm run conformance against the Carnet it starts, fails the run', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-conformance-report-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const failing = path.join(PROJECT, 'test/conformance/fixtures/failing.json');
  const cli = path.join(PROJECT, 'dist/conformance/cli.js');
  const error = await promisify(execFile)(process.execPath, [cli, '--scripts', failing, '--out', out], { cwd: PROJECT }).then(
    () => undefined,
    (e: { code?: number; stdout?: string; stderr?: string }) => e,
  );
  t.equal(error?.code, 1, `exit status 1; stderr: ${error?.stderr}`);
  t.match(error?.stdout, /FAIL {2}A TestScript that must fail/);
  t.match(error?.stdout, /0 of 1 TestScripts passed; asserts: 2 passed, 1 warnings, 1 failed, 0 errors, 1 skipped/);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'testreport-deliberately-failing.json'), 'utf8')) as TestReport;
  t.equal(report.resourceType, 'TestReport');
  t.equal(report.result, 'fail');
  t.equal(report.status, 'completed');
  const [first, second] = report.test ?? [];
  t.same(
    first.action.map((a) => (a.operation ?? a.assert)!.result),
    ['pass', 'pass', 'warning', 'fail', 'skip'],
    'the false assert fails, the warningOnly one warns, the rest of the test is skipped',
  );
  t.match((first.action[3].assert!).message, /FHIR 3\.0\.2 \(false\): expected "3\.0\.2", got "4\.0\.1"/);
  t.same(second.action.map((a) => (a.operation ?? a.assert)!.result), ['pass', 'pass'], 'the next test still runs');
  t.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /\| A TestScript that must fail .* \| \*\*FAIL\*\* \|/);
  t.match(fs.readFileSync(path.join(out, 'report.html'), 'utf8'), /<tr class="fail"><td>01-WrongVersion<\/td><td>fail<\/td>/);
});
