// fhir/accounts: the account operations on Patient (docs/accounts.md): $enrol (the insurer's
// enrolment feed, fhir/enrol.ts), $activate, $object and $close (the person). Each is a transition of
// policy/account.ts written as a create or update of the Patient through the normal write path:
// assertWrite with the transition it carries (policy/write.ts decides who may make it), then
// applyOne, which commits the Patient, the patient's consent stamp and the AuditEvent together.

import type { ParametersParameter, Patient } from '@medplum/fhirtypes';
import { accountOf, provisionalCodeMatches, transition, withAccount, type AccountEvent, type AccountEventKind, type Transition } from '../policy/account.js';
import { creatorKey } from '../policy/decide.js';
import { consentStamp } from '../policy/index.js';
import { ACCOUNT_ACTORS } from '../policy/write.js';
import { WriteConflict } from '../store/port.js';
import { indexEntries } from '../search/extract.js';
import { Conflict, Forbidden, Invalid, NotFound, type FhirError } from '../base/outcome.js';
import { access, assertAllowed, assertWrite, previousOf } from './access.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { obligations } from './create.js';
import { applyOne, versionResponse } from './resource.js';
import type { Operation, OperationParameter } from './operations.js';
import { enrol, insOf, MAX_ENROL, parametersOf } from './enrol.js';

export { INS_SYSTEM } from './enrol.js';

/** What $activate, $object and $close answer. */
const PATIENT_OUT: OperationParameter = { name: 'return', use: 'out', min: 1, max: '1', type: 'Patient', documentation: 'The Patient, its account in its new state.' };

/** A refused transition as an error: 403 when the proof is wrong, else 409 (the account's state). Its stable code leads the diagnostics. */
function refusal(result: Extract<Transition, { ok: false }>): FhirError {
  const diagnostics = `${result.code}: ${result.reason}`;
  return result.code === 'ACCOUNT_PROOF' || result.code === 'ACCOUNT_LOCKED' ? new Forbidden(diagnostics) : new Conflict(diagnostics);
}

function stringParameter(parameters: ParametersParameter[], name: string, operation: string): string {
  const value = parameters.find((p) => p.name === name)?.valueString;
  if (typeof value !== 'string' || value === '') throw new Invalid(`$${operation} needs the parameter "${name}" (valueString)`, `Parameters.parameter.where(name='${name}')`);
  return value;
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
  if (!next.ok) {
    // A wrong $activate attempt is counted on the account before it is answered (and recorded as
    // refused): with the version read, so that concurrent attempts cannot share one count.
    if (next.record && ACCOUNT_ACTORS[kind].includes(granted.actor.kind)) {
      const counted = { ...withAccount(patient, next.record), id };
      try {
        await ctx.store.transact([{ kind: 'update', resource: counted, index: indexEntries(counted), expectedVersion: read.version.versionId }, { kind: 'stamp', key: consentStamp(id) }], ctx.now());
      } catch (error) {
        if (error instanceof WriteConflict) throw new Conflict('ACCOUNT_BUSY: the account changed meanwhile; try again');
        throw error;
      }
    }
    throw refusal(next);
  }
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
    codeMatches: provisionalCodeMatches(accountOf(patient).provisionalCode, code, ctx.accountCodeKey),
    insMatches: insOf(patient) === ins,
  }));
}

const instance = (handler: (ctx: FhirContext, req: FhirRequest, id: string) => Promise<FhirResponse>): Operation['instance'] => ({ methods: ['POST'], handler: (ctx, req, _type, id) => handler(ctx, req, id) });

export const ACCOUNT_OPERATIONS: readonly Operation[] = [
  {
    name: 'enrol',
    documentation: `POST [base]/Patient/$enrol (the enrolment feed, a system): a Parameters of "patient" resources, each with an INS, a minor's followed by "representative" RelatedPersons (a v3-RoleCode relationship); each becomes a notified account with a six-week objection window. Answers a "result" per person: the Patient reference, created or existing (idempotent on the INS), and for a new account its provisional code, given once, and its representatives. At most ${MAX_ENROL} people per call.`,
    types: ['Patient'],
    affectsState: true,
    parameters: [
      { name: 'patient', use: 'in', min: 1, max: String(MAX_ENROL), type: 'Patient', documentation: 'A person to enrol, with their INS.' },
      { name: 'representative', use: 'in', min: 0, max: '*', type: 'RelatedPerson', documentation: 'A legal representative of the minor of the "patient" parameter before it (a v3-RoleCode relationship); acts for them until their eighteenth birthday.' },
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
