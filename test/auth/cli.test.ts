// The operator commands, run as child processes on a temporary CARNET_DATA_DIR, as
// `npm run -s token` and `npm run -s client` run them: development tokens for every kind of
// actor, verified against the development key the command created; client registration into
// the store a running server shares; usage errors (exit 2); no development token in production.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { KEY_NAMES, loadOrCreateKey } from '../../src/auth/keys.js';
import { TokenVerifier } from '../../src/auth/verify.js';
import { DEVELOPMENT_ISSUER } from '../../src/auth/context.js';
import type { Actor } from '../../src/auth/actor.js';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const tempDirs: string[] = [];
t.teardown(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-cli-'));
  tempDirs.push(dir);
  return dir;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The parent's environment without anything that configures Carnet, the loader or tap. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(CARNET_|TAP|NODE_OPTIONS$|NODE_ENV$|PORT$|HOST$|LOG_LEVEL$)/.test(key)) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

function run(cli: 'token' | 'client', args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', `src/cli/${cli}.ts`, ...args], { cwd: PROJECT, env: childEnv(env) }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const dataDir = tempDir();
const token = (args: string[], env: Record<string, string> = {}) => run('token', args, { CARNET_DATA_DIR: dataDir, ...env });

/** The Actor of the single JWT a run printed, verified with the development key of `dir`. */
async function actorOf(tt: Test, result: Run, audience = 'http://127.0.0.1:8080/fhir', dir = dataDir): Promise<Actor> {
  tt.equal(result.code, 0, `exit 0${result.stderr ? `: ${result.stderr}` : ''}`);
  const lines = result.stdout.split('\n');
  tt.equal(lines.length, 2, 'one line');
  tt.equal(lines[1], '', 'ending with a newline');
  tt.match(lines[0], JWT, 'a JWT');
  const key = await loadOrCreateKey(dir, KEY_NAMES.development);
  const verifier = new TokenVerifier([{ issuer: DEVELOPMENT_ISSUER, jwks: { keys: [key.publicJwk] } }], () => audience);
  return verifier.actorOf(`Bearer ${lines[0]}`);
}

const scopesOf = (actor: Actor) => actor.grants.map((g) => `${g.context}/${g.type}.${['c', 'r', 'u', 'd', 's'].filter((p) => g.permissions.has(p as 'c')).join('')}`);

t.test('token: the first run creates the development key in the data directory', async (tt) => {
  const file = path.join(dataDir, 'keys', `${KEY_NAMES.development}.jwk.json`);
  tt.notOk(fs.existsSync(file), 'no key before');
  const result = await token(['patient', '--patient', 'p1']);
  tt.ok(fs.existsSync(file), 'the key file exists after');
  const kid = (JSON.parse(fs.readFileSync(file, 'utf8')) as JWK).kid;
  tt.equal(decodeProtectedHeader(result.stdout.trim()).kid, kid, 'the token is signed with it');
  const again = await token(['patient', '--patient', 'p1']);
  tt.equal(decodeProtectedHeader(again.stdout.trim()).kid, kid, 'later runs reuse it');
});

t.test('token: every kind of actor, with default scopes that fit it', async (tt) => {
  const [patient, representative, practitioner, system, insurer, employer] = await Promise.all([
    token(['patient', '--patient', 'p1']),
    token(['representative', '--related-person', 'rp1', '--patient', 'child-1', '--patient', 'child-2']),
    token(['practitioner', '--practitioner', 'dr-1', '--profession', '10', '--specialty', 'SM26', '--purpose', 'ETREAT', '--rpps', '10101010101']),
    token(['system', '--client', 'lab-client', '--organization', 'org-lab']),
    token(['insurer', '--organization', 'cpam-75']),
    token(['insurer', '--organization', 'acme', '--role', 'employer']),
  ]);

  const p = await actorOf(tt, patient);
  tt.equal(p.kind, 'patient');
  if (p.kind === 'patient') tt.equal(p.patientId, 'p1');
  tt.same(scopesOf(p), ['patient/*.cruds'], 'a patient reads and writes their own record');
  tt.equal(p.subject, 'Patient/p1');
  tt.equal(p.issuer, DEVELOPMENT_ISSUER);

  const r = await actorOf(tt, representative);
  tt.equal(r.kind, 'representative');
  if (r.kind === 'representative') {
    tt.equal(r.relatedPersonId, 'rp1');
    tt.same(r.patientIds, ['child-1', 'child-2']);
  }
  tt.same(scopesOf(r), ['patient/*.rs']);

  const d = await actorOf(tt, practitioner);
  tt.equal(d.kind, 'practitioner');
  if (d.kind === 'practitioner') {
    tt.equal(d.practitionerId, 'dr-1');
    tt.equal(d.profession, '10');
    tt.equal(d.specialty, 'SM26');
    tt.equal(d.purposeOfUse, 'ETREAT');
    tt.equal(d.rpps, '10101010101');
  }
  tt.same(scopesOf(d), ['user/*.cruds']);

  const s = await actorOf(tt, system);
  tt.equal(s.kind, 'system');
  if (s.kind === 'system') {
    tt.equal(s.clientId, 'lab-client');
    tt.equal(s.organizationId, 'org-lab');
  }
  tt.same(scopesOf(s), ['system/*.cruds']);

  const i = await actorOf(tt, insurer);
  tt.equal(i.kind, 'organisation');
  if (i.kind === 'organisation') {
    tt.equal(i.role, 'mandatory-insurer', 'an insurer is a mandatory insurer by default');
    tt.equal(i.organizationId, 'cpam-75');
  }
  tt.same(scopesOf(i), ['user/*.rs']);

  const e = await actorOf(tt, employer);
  if (e.kind === 'organisation') tt.equal(e.role, 'employer', '--role chooses another organisation role');
});

t.test('token: a practitioner purpose defaults to TREAT; --scope, --ttl and the audience', async (tt) => {
  const [plain, scoped, based, ported] = await Promise.all([
    token(['practitioner', '--practitioner', 'dr-2', '--profession', '21']),
    token(['patient', '--patient', 'p2', '--scope', 'patient/Observation.rs patient/DocumentReference.r', '--ttl', '120']),
    token(['patient', '--patient', 'p3'], { CARNET_BASE_URL: 'https://carnet.example.org/fhir' }),
    token(['patient', '--patient', 'p4'], { PORT: '9123' }),
  ]);
  const d = await actorOf(tt, plain);
  if (d.kind === 'practitioner') tt.equal(d.purposeOfUse, 'TREAT');
  const p = await actorOf(tt, scoped);
  tt.same(scopesOf(p), ['patient/Observation.rs', 'patient/DocumentReference.r'], '--scope overrides the default');
  const claims = decodeJwt(scoped.stdout.trim());
  tt.equal((claims.exp as number) - (claims.iat as number), 120, '--ttl sets the lifetime');
  tt.equal(decodeJwt(based.stdout.trim()).aud, 'https://carnet.example.org/fhir', 'aud is CARNET_BASE_URL when set');
  tt.equal(decodeJwt(ported.stdout.trim()).aud, 'http://127.0.0.1:9123/fhir', 'else http://HOST:PORT/fhir');
});

t.test('token: bad arguments print the usage and exit 2', async (tt) => {
  const cases: [string, string[]][] = [
    ['no kind', []],
    ['an unknown kind', ['doctor', '--practitioner', 'x']],
    ['a patient without --patient', ['patient']],
    ['an unknown option', ['patient', '--patient', 'p1', '--colour', 'blue']],
    ['an option of another kind', ['patient', '--patient', 'p1', '--profession', '10']],
    ['a practitioner without profession', ['practitioner', '--practitioner', 'dr']],
    ['a purpose other than TREAT or ETREAT', ['practitioner', '--practitioner', 'dr', '--profession', '10', '--purpose', 'HPAYMT']],
    ['an unknown organisation role', ['insurer', '--organization', 'o', '--role', 'bank']],
    ['an id that is not a FHIR id', ['patient', '--patient', 'p 1']],
    ['two kinds', ['patient', 'system', '--patient', 'p1']],
    ['a ttl that is not a number', ['patient', '--patient', 'p1', '--ttl', 'soon']],
  ];
  const results = await Promise.all(cases.map(([, args]) => token(args)));
  cases.forEach(([what, _args], index) => {
    const result = results[index];
    tt.equal(result.code, 2, `${what}: exit 2`);
    tt.equal(result.stdout, '', `${what}: no token`);
    tt.match(result.stderr, /Usage: npm run -s token/, `${what}: the usage`);
  });
});

t.test('token: refused when NODE_ENV=production, and no key is created', async (tt) => {
  const dir = tempDir();
  const result = await run('token', ['patient', '--patient', 'p1'], { CARNET_DATA_DIR: dir, NODE_ENV: 'production' });
  tt.not(result.code, 0, 'a failure exit code');
  tt.not(result.code, 2, 'not a usage error');
  tt.equal(result.stdout, '', 'no token');
  tt.match(result.stderr, /NODE_ENV=production/);
  tt.notOk(fs.existsSync(path.join(dir, 'keys')), 'no development key created');
});

async function jwksFile(dir: string, alg: 'ES384' | 'RS384' = 'ES384', options: { single?: boolean; withPrivate?: boolean } = {}): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(options.withPrivate ? privateKey : publicKey)), kid: `${alg.toLowerCase()}-1`, alg };
  const file = path.join(dir, `jwks-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify(options.single ? jwk : { keys: [jwk] }));
  return file;
}

t.test('client register: the id alone on the last line, the client in the store a running server holds open', async (tt) => {
  const dir = tempDir();
  // The server's store, open before and during the command, as when Carnet runs.
  const serverStore = new SqliteStore({ dataDir: dir });
  tt.teardown(() => serverStore.close());
  const file = await jwksFile(dir);
  const result = await run('client', ['register', '--name', 'Laboratoire Bio-Sud', '--kind', 'system', '--jwks', file, '--scope', 'system/DocumentReference.cru system/Binary.cr', '--certified', '--organization', 'org-bio'], {
    CARNET_DATA_DIR: dir,
  });
  tt.equal(result.code, 0, `exit 0${result.stderr ? `: ${result.stderr}` : ''}`);
  const lines = result.stdout.trimEnd().split('\n');
  tt.ok(lines.length > 1, 'a summary first');
  const id = lines[lines.length - 1];
  tt.match(id, UUID, 'the last line is the client id alone');
  tt.match(result.stdout, /Laboratoire Bio-Sud/);
  const client = await serverStore.clients.get(id);
  tt.ok(client, 'the running server sees the client');
  tt.equal(client?.name, 'Laboratoire Bio-Sud');
  tt.equal(client?.kind, 'system');
  tt.equal(client?.certified, true);
  tt.equal(client?.scopes, 'system/DocumentReference.cru system/Binary.cr');
  tt.equal(client?.organizationId, 'org-bio');
  tt.equal(client?.jwks.keys[0].kid, 'es384-1');
  tt.notOk(client && 'd' in client.jwks.keys[0], 'public key only');

  // A single JWK (not a set) is accepted; without --certified the client is not certified.
  const single = await run('client', ['register', '--name', 'Carnet mobile', '--kind', 'patient-app', '--jwks', await jwksFile(dir, 'RS384', { single: true }), '--scope', 'patient/*.rs launch/patient'], {
    CARNET_DATA_DIR: dir,
  });
  tt.equal(single.code, 0, `exit 0${single.stderr ? `: ${single.stderr}` : ''}`);
  const appId = single.stdout.trimEnd().split('\n').pop() as string;
  tt.equal((await serverStore.clients.get(appId))?.certified, false, 'not certified unless --certified');

  // What users see of a certified patient app: editor, description, certification date.
  const listed = await run(
    'client',
    ['register', '--name', 'Tensio', '--kind', 'patient-app', '--jwks', await jwksFile(dir, 'ES384'), '--scope', 'patient/Observation.rs', '--certified', '--certified-on', '2026-10-01', '--editor', 'Tensio SAS', '--description', 'Blood pressure diary'],
    { CARNET_DATA_DIR: dir },
  );
  tt.equal(listed.code, 0, `exit 0${listed.stderr ? `: ${listed.stderr}` : ''}`);
  tt.match(listed.stdout, /Reads your measurements and test results/, 'the summary says what it reads');
  const tensio = await serverStore.clients.get(listed.stdout.trimEnd().split('\n').pop() as string);
  tt.same([tensio?.editor, tensio?.description, tensio?.certifiedOn], ['Tensio SAS', 'Blood pressure diary', '2026-10-01']);

  const list = await run('client', ['list'], { CARNET_DATA_DIR: dir });
  tt.equal(list.code, 0);
  tt.match(list.stdout, new RegExp(`^${id}\tsystem\tcertified\tLaboratoire Bio-Sud\t`, 'm'));
  tt.match(list.stdout, new RegExp(`^${appId}\tpatient-app\tnot-certified\tCarnet mobile\t`, 'm'));
});

t.test('client: bad arguments print the usage and exit 2, registering nothing', async (tt) => {
  const dir = tempDir();
  const good = await jwksFile(dir);
  const privateFile = await jwksFile(dir, 'ES384', { withPrivate: true });
  const base = ['register', '--name', 'X', '--kind', 'system', '--jwks', good, '--scope', 'system/*.rs'];
  const cases: [string, string[]][] = [
    ['no command', []],
    ['an unknown command', ['delete']],
    ['register without --name', base.filter((_, i) => i !== 1 && i !== 2)],
    ['an unknown kind', ['register', '--name', 'X', '--kind', 'robot', '--jwks', good, '--scope', 'system/*.rs']],
    ['a private key', ['register', '--name', 'X', '--kind', 'system', '--jwks', privateFile, '--scope', 'system/*.rs']],
    ['a missing JWKS file', ['register', '--name', 'X', '--kind', 'system', '--jwks', path.join(dir, 'nope.json'), '--scope', 'system/*.rs']],
    ['a scope that is not SMART', ['register', '--name', 'X', '--kind', 'system', '--jwks', good, '--scope', 'everything']],
    ['an unknown option', [...base, '--colour', 'blue']],
  ];
  const results = await Promise.all(cases.map(([, args]) => run('client', args, { CARNET_DATA_DIR: dir })));
  cases.forEach(([what], index) => {
    tt.equal(results[index].code, 2, `${what}: exit 2`);
    tt.match(results[index].stderr, /Usage:/, `${what}: the usage`);
  });
  const store = new SqliteStore({ dataDir: dir });
  tt.same(await store.clients.list(), [], 'nothing registered');
  await store.close();
});
