// fhir/accounts: the account operations on Patient (docs/accounts.md): $enrol (the insurer's
// enrolment feed), $activate, $object and $close (the person). Each is a transition of
// policy/account.ts written as a create or update of the Patient through the normal write path:
// assertWrite with the transition it carries (policy/write.ts decides who may make it), then
// applyOne, which commits the Patient, the patient's consent stamp and the AuditEvent together.

import { randomInt } from 'node:crypto';
import type { Identifier, Parameters, ParametersParameter, Patient } from '@medplum/fhirtypes';
import { accountOf, hashProvisionalCode, provisionalCodeMatches, transition, withAccount, type AccountEvent, type AccountEventKind, type Transition } from '../policy/account.js';
import { creatorKey } from '../policy/decide.js';
import { indexEntries } from '../search/extract.js';
import type { SearchPlan } from '../search/types.js';
import { Conflict, Forbidden, Invalid, NotFound, type FhirError } from '../base/outcome.js';
import { access, assertAllowed, assertWrite, previousOf } from './access.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { newId } from './body.js';
import { obligations } from './create.js';
import { applyOne, incomingResource, versionResponse } from './resource.js';
import type { Operation, OperationParameter } from './operations.js';

/** What $activate, $object and $close answer. */
const PATIENT_OUT: OperationParameter = { name: 'return', use: 'out', min: 1, max: '1', type: 'Patient', documentation: 'The Patient, its account in its new state.' };

/** The INS (identifiant national de santé, docs/glossary.md): the identity an account is enrolled by. */
export const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
/** People in one $enrol call. */
const MAX_ENROL = 1_000;
/** The provisional code's alphabet: no 0/O, 1/I/L (it is typed from a letter). */
const CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
const CODE_LENGTH = 12;

/** A refused transition as an error: 403 when the proof is wrong, else 409 (the account's state). Its stable code leads the diagnostics. */
function refusal(result: Extract<Transition, { ok: false }>): FhirError {
  const diagnostics = `${result.code}: ${result.reason}`;
  return result.code === 'ACCOUNT_PROOF' ? new Forbidden(diagnostics) : new Conflict(diagnostics);
}

/** The Parameters body of an operation (400 otherwise). */
function parametersOf(req: FhirRequest, operation: string): ParametersParameter[] {
  const value = req.body.kind === 'json' ? (req.body.value as Partial<Parameters> | null) : null;
  if (!value || typeof value !== 'object' || value.resourceType !== 'Parameters') throw new Invalid(`$${operation} takes a Parameters body`);
  return value.parameter ?? [];
}

function stringParameter(parameters: ParametersParameter[], name: string, operation: string): string {
  const value = parameters.find((p) => p.name === name)?.valueString;
  if (typeof value !== 'string' || value === '') throw new Invalid(`$${operation} needs the parameter "${name}" (valueString)`, `Parameters.parameter.where(name='${name}')`);
  return value;
}

function insOf(patient: Patient): string | undefined {
  return patient.identifier?.find((i: Identifier) => i.system === INS_SYSTEM && typeof i.value === 'string')?.value;
}

/** A fresh provisional code, printed on the person's letter: 12 characters of 31 (about 59 bits). */
function provisionalCode(): string {
  let code = '';
  for (let i = 0; i < CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`;
}

function byIns(ins: string): SearchPlan {
  return { types: ['Patient'], where: [{ kind: 'token', param: 'identifier', values: [{ system: INS_SYSTEM, code: ins }] }], sort: [] };
}

/** The outcome of one person's enrolment, as a `result` part of the answer. */
function result(ins: string, id: string, outcome: 'created' | 'existing', code?: string): ParametersParameter {
  return {
    name: 'result',
    part: [
      { name: 'ins', valueString: ins },
      { name: 'patient', valueReference: { reference: `Patient/${id}` } },
      { name: 'outcome', valueCode: outcome },
      ...(code !== undefined ? [{ name: 'provisionalCode', valueString: code }] : []),
    ],
  };
}

/**
 * POST [base]/Patient/$enrol: each `patient` parameter (a Patient with an INS) becomes a notified
 * account, its provisional code answered once (the server keeps only its hash). Idempotent on the
 * INS: a person already enrolled (or known) is answered with their existing id, and nothing changes.
 */
async function enrol(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  const granted = access(req, 'Patient', 'c');
  const people = parametersOf(req, 'enrol').filter((p) => p.name === 'patient');
  if (people.length === 0) throw new Invalid('$enrol needs at least one "patient" parameter (resource: a Patient with an INS)');
  if (people.length > MAX_ENROL) throw new Invalid(`At most ${MAX_ENROL} people in one $enrol`);
  // Every person is checked before anyone is enrolled: a call refused for one of them enrols nobody.
  const checked = people.map((parameter, i) => {
    const incoming = incomingResource(parameter.resource, 'Patient') as Patient;
    const ins = insOf(incoming);
    if (ins === undefined) throw new Invalid(`patient ${i}: an account is enrolled by INS (identifier with system ${INS_SYSTEM})`, `Parameters.parameter[${i}].resource.identifier`);
    return { incoming, ins };
  });
  const answers: ParametersParameter[] = [];
  for (const { incoming, ins } of checked) {
    // Identity by INS (fhir/access identityMatch): the feed learns the id, not the record.
    const existing = await ctx.store.search(byIns(ins), { count: 1 });
    const match = existing.matches[0];
    if (match) {
      answers.push(result(ins, match.id, 'existing'));
      continue;
    }
    const code = provisionalCode();
    const next = transition(undefined, { kind: 'enrol', provisionalCode: hashProvisionalCode(code), ...(incoming.birthDate ? { birthDate: incoming.birthDate } : {}) }, Date.parse(ctx.now()));
    if (!next.ok) throw refusal(next);
    const { id: _ignored, ...content } = incoming;
    const patient = { ...withAccount(content as Patient, next.account), id: newId() };
    const permit = await assertWrite(ctx, granted, 'create', { after: patient, account: 'enrol' }, `Patient/${patient.id}`);
    const response = await applyOne(ctx, req, {
      // Re-checked inside the transaction: two feeds enrolling one INS at once make one account.
      op: { kind: 'create', resource: patient, index: indexEntries(patient), creator: creatorKey(granted.actor), ifNoneExist: byIns(ins) },
      extra: obligations(permit),
      respond: (written) => ({ status: written.kind === 'created' ? 201 : 200, headers: {}, ...(written.kind === 'created' || written.kind === 'existing' ? { resource: { resourceType: 'Patient', id: written.version.id } } : {}) }),
    });
    const id = response.resource?.id ?? patient.id;
    answers.push(response.status === 201 ? result(ins, id, 'created', code) : result(ins, id, 'existing'));
  }
  const parameters: Parameters = { resourceType: 'Parameters', parameter: answers };
  // Each new account's AuditEvent was written with it; the answer itself is recorded as the operation.
  return { status: 200, headers: {}, resource: parameters };
}

/**
 * Applies the transition `kind` to Patient/`id`: the caller must see the Patient (else 404, as if
 * it did not exist), the transition must be allowed in the account's state (409 naming it), and
 * the caller must be the one who makes it (policy/write.ts ACCOUNT_ACTORS, 403).
 */
async function transitionOf(ctx: FhirContext, req: FhirRequest, id: string, kind: AccountEventKind, eventOf: (patient: Patient) => AccountEvent): Promise<FhirResponse> {
  const granted = access(req, 'Patient', 'u');
  const what = `Patient/${id}`;
  const read = await ctx.store.read('Patient', id);
  const previous = read.kind === 'found' ? await previousOf(ctx, read) : undefined;
  if (read.kind !== 'found' || !previous) throw new NotFound(what);
  await assertAllowed(ctx, granted, previous.resource, previous.creator, what);
  const patient = previous.resource as Patient;
  const next = transition(accountOf(patient), eventOf(patient), Date.parse(ctx.now()));
  if (!next.ok) throw refusal(next);
  const after = { ...withAccount(patient, next.account), id };
  const permit = await assertWrite(ctx, granted, 'update', { before: previous, after, account: kind }, what);
  return applyOne(ctx, req, {
    op: { kind: 'update', resource: after, index: indexEntries(after), creator: creatorKey(granted.actor), expectedVersion: read.version.versionId },
    extra: obligations(permit),
    respond: (written) => {
      if (written.kind !== 'updated' && written.kind !== 'unchanged') throw new Error(`unexpected result ${written.kind}`);
      return versionResponse(ctx, req, 200, written.version, false);
    },
  });
}

function activate(ctx: FhirContext, req: FhirRequest, id: string): Promise<FhirResponse> {
  const parameters = parametersOf(req, 'activate');
  const code = stringParameter(parameters, 'code', 'activate');
  const ins = stringParameter(parameters, 'ins', 'activate');
  return transitionOf(ctx, req, id, 'activate', (patient) => ({
    kind: 'activate',
    codeMatches: provisionalCodeMatches(accountOf(patient).provisionalCode, code),
    insMatches: insOf(patient) === ins,
  }));
}

const instance = (handler: (ctx: FhirContext, req: FhirRequest, id: string) => Promise<FhirResponse>): Operation['instance'] => ({ methods: ['POST'], handler: (ctx, req, _type, id) => handler(ctx, req, id) });

export const ACCOUNT_OPERATIONS: readonly Operation[] = [
  {
    name: 'enrol',
    documentation: `POST [base]/Patient/$enrol (the enrolment feed, a system): a Parameters of "patient" resources, each with an INS; each becomes a notified account with a six-week objection window. Answers a "result" per person: the Patient reference, created or existing (idempotent on the INS), and for a new account its provisional code, given once. At most ${MAX_ENROL} people per call.`,
    types: ['Patient'],
    affectsState: true,
    parameters: [
      { name: 'patient', use: 'in', min: 1, max: String(MAX_ENROL), type: 'Patient', documentation: 'A person to enrol, with their INS.' },
      {
        name: 'result',
        use: 'out',
        min: 1,
        max: '*',
        documentation: 'One per person, in order.',
        part: [
          { name: 'ins', use: 'out', min: 1, max: '1', type: 'string' },
          { name: 'patient', use: 'out', min: 1, max: '1', type: 'Reference' },
          { name: 'outcome', use: 'out', min: 1, max: '1', type: 'code', documentation: 'created or existing.' },
          { name: 'provisionalCode', use: 'out', min: 0, max: '1', type: 'string', documentation: 'For a new account: the code of the letter, given once.' },
        ],
      },
    ],
    type: { methods: ['POST'], handler: (ctx, req) => enrol(ctx, req) },
  },
  {
    name: 'activate',
    documentation: 'POST [base]/Patient/[id]/$activate (the person): Parameters "code" (the provisional code of the letter) and "ins"; opens a notified account at once.',
    types: ['Patient'],
    affectsState: true,
    parameters: [
      { name: 'code', use: 'in', min: 1, max: '1', type: 'string', documentation: 'The provisional code of the letter.' },
      { name: 'ins', use: 'in', min: 1, max: '1', type: 'string', documentation: 'The person\'s INS.' },
      PATIENT_OUT,
    ],
    instance: instance(activate),
  },
  {
    name: 'object',
    affectsState: true,
    parameters: [PATIENT_OUT],
    documentation: 'POST [base]/Patient/[id]/$object (the person): objects to a notified account before its window ends; it is never opened and takes no document.',
    types: ['Patient'],
    instance: instance((ctx, req, id) => transitionOf(ctx, req, id, 'object', () => ({ kind: 'object' }))),
  },
  {
    name: 'close',
    affectsState: true,
    parameters: [PATIENT_OUT],
    documentation: 'POST [base]/Patient/[id]/$close: the person closes their open account (or, at their death, the feed that enrolled them); professionals read nothing of it any more, and it is archived 30 days later.',
    types: ['Patient'],
    instance: instance((ctx, req, id) => transitionOf(ctx, req, id, 'close', () => ({ kind: 'close', by: req.actor?.kind === 'system' ? 'death' : 'person' }))),
  },
];
