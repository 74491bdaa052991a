// policy: consent decisions. decide() for one resource, restrict() for a query; the access matrix;
// reading a patient's Consents, cached per patient and coherent across processes: each cached
// state is keyed on the patient's stamp (Store.stamps), which every write of their Patient or of
// one of their Consents bumps in its own transaction (the `stamps` obligation of decideWrite), and
// which is read from the store before each use. Uses search/ and the store port, never fhir/ routes.

import type { Binary, Consent, Patient, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import type { Store } from '../store/port.js';
import type { Condition } from '../search/types.js';
import { patientOf, securityContextOf } from './compartment.js';
import { appGranted, rulesOf, stateOf, type ConsentState } from './consents.js';
import { creatorKey, decide, PERMIT, representable, representationEnded, type Decision, type WriteAction } from './decide.js';
import { Forbidden } from '../base/outcome.js';
import { decideWrite } from './write.js';
import { threadOf } from './messaging.js';
import type { AccountEventKind } from './account.js';
import { mayRead, readableTypes } from './matrix.js';
import { policyConditions } from './restrict.js';
import { pinnedPatients, type KnownPatients } from './known.js';

const MAX_STATES = 10_000;
const MAX_CONSENTS = 1_000;
/** Beyond this many patients named in one search, the query checks each candidate's patient itself. */
const MAX_PINNED = 20;

/** The stamp a write of a patient's Patient or Consents bumps (Store.stamps). */
export function consentStamp(patientId: string): string {
  return `consent:Patient/${patientId}`;
}

/** The stamp every write of a Subscription bumps: the notifier's list of active subscriptions is keyed on it. */
export const SUBSCRIPTIONS_STAMP = 'subscriptions';

/**
 * The stamps a write of `resources` (its content before and after) bumps: each patient's whose
 * consent state it may change, and the subscriptions' for a Subscription.
 */
export function stampsOf(resources: readonly (Resource | undefined)[]): string[] {
  const keys = new Set<string>();
  for (const resource of resources) {
    if (resource?.resourceType === 'Subscription') keys.add(SUBSCRIPTIONS_STAMP);
    if (resource?.resourceType !== 'Consent' && resource?.resourceType !== 'Patient') continue;
    const patientId = patientOf(resource);
    if (patientId !== undefined) keys.add(consentStamp(patientId));
  }
  return [...keys];
}

export class Policy {
  /** Cached consent states, each with the patient's stamp read before the state was. */
  private readonly states = new Map<string, { stamp: number; state: ConsentState }>();

  constructor(
    private readonly store: Store,
    /** The clock of decisions (Consent periods): the server's. */
    private readonly now: () => string = () => new Date().toISOString(),
  ) {}

  private instant(): number {
    return Date.parse(this.now());
  }

  /**
   * A patient's consent state: their Patient resource and active Consents. The cached one serves
   * while the patient's stamp is the one it was read with; the stamp is read first, so a state
   * read while a write commits is kept with the older stamp and read again next time.
   */
  async stateOf(patientId: string): Promise<ConsentState> {
    const [stamp] = await this.store.stamps([consentStamp(patientId)]);
    const cached = this.states.get(patientId);
    if (cached && cached.stamp === stamp) return cached.state;
    const read = await this.store.read('Patient', patientId);
    const patient = read.kind === 'found' ? (read.version.resource as Patient) : undefined;
    const consents = await this.store.search(
      {
        types: ['Consent'],
        where: [
          { kind: 'reference', param: 'patient', values: [{ targetType: 'Patient', targetId: patientId }] },
          { kind: 'token', param: 'status', values: [{ code: 'active' }] },
        ],
        sort: [],
      },
      { count: MAX_CONSENTS },
    );
    const state = stateOf(patientId, patient, consents.matches.map((m) => m.resource as Consent), consents.next === undefined);
    // Not kept: the state of a patient that does not exist (any search can name one: ?patient=<anything>).
    if (!patient) {
      this.states.delete(patientId);
      return state;
    }
    if (!cached && this.states.size >= MAX_STATES) this.states.delete(this.states.keys().next().value as string);
    this.states.set(patientId, { stamp, state });
    return state;
  }

  /**
   * The actor as it may act now: a representative reaches only the patients they still represent
   * (a minor's representatives until the eighteenth birthday: decide.ts `representable`), so that
   * the compartment every read, search and write is limited to leaves the others out. 403 when
   * they represent nobody any more. Other actors as they are.
   */
  async acting(actor: Actor): Promise<Actor> {
    if (actor.kind !== 'representative') return actor;
    const now = this.instant();
    const states = await Promise.all(actor.patientIds.map((id) => this.stateOf(id)));
    const kept = actor.patientIds.filter((_id, i) => !states[i].patient || representable(states[i].patient as Patient, now));
    if (kept.length === actor.patientIds.length) return actor;
    const ended = states.find((s) => s.patient && !representable(s.patient, now))?.patient as Patient;
    if (kept.length === 0) throw new Forbidden(`The representation ended: ${representationEnded(ended)}`);
    return { ...actor, patientIds: kept };
  }

  /**
   * Whether the patient has granted the app `clientId` (an active permit Consent naming it, in
   * force now). Read through the stamp-keyed state, so a revocation committed by any process is
   * seen at the next call: the auth hook asks it on every request of an app's token.
   */
  async grantsApp(patientId: string, clientId: string): Promise<boolean> {
    return appGranted(await this.stateOf(patientId), clientId, this.instant());
  }

  /** May `actor` read `resource` (created by `creator`)? */
  async decide(actor: Actor, resource: Resource, creator?: string): Promise<Decision> {
    if (resource.resourceType === 'Binary') return this.decideBinary(actor, resource as Binary, creator);
    const patientId = patientOf(resource);
    const state = patientId !== undefined ? await this.stateOf(patientId) : undefined;
    return decide({ actor, action: 'read', resource, ...(state ? { state } : {}), ...(creator !== undefined ? { creator } : {}), mayRead, now: this.instant() });
  }

  /**
   * decide() for each of several resources (a page of results): each patient's consent state is
   * read once for them all (one stamp read per patient, not one per resource), then each is
   * decided as decide() would. The page is one answer, decided at one moment.
   */
  async decideAll(actor: Actor, items: readonly { resource: Resource; creator?: string }[]): Promise<Decision[]> {
    const states = new Map<string, Promise<ConsentState>>();
    const stateFor = (patientId: string) => {
      let state = states.get(patientId);
      if (!state) states.set(patientId, (state = this.stateOf(patientId)));
      return state;
    };
    const now = this.instant();
    return Promise.all(
      items.map(async ({ resource, creator }) => {
        if (resource.resourceType === 'Binary') return this.decide(actor, resource, creator);
        const patientId = patientOf(resource);
        const state = patientId !== undefined ? await stateFor(patientId) : undefined;
        return decide({ actor, action: 'read', resource, ...(state ? { state } : {}), ...(creator !== undefined ? { creator } : {}), mayRead, now });
      }),
    );
  }

  /**
   * May `actor` make this change: create `after`, replace `before` with `after`, or delete
   * `before`? What is replaced or deleted must first be readable (a hidden one answers 404).
   */
  async decideWrite(actor: Actor, action: WriteAction, change: { before?: { resource: Resource; creator?: string }; after?: Resource; account?: AccountEventKind }): Promise<Decision> {
    const { before, after, account } = change;
    if (before) {
      const read = await this.decide(actor, before.resource, before.creator);
      if (!read.permit) return read;
    }
    const subject = (after ?? before?.resource) as Resource;
    if (subject.resourceType === 'Binary') {
      const context = await this.binaryContext(actor, subject as Binary);
      if (context) return context;
    }
    const patientId = patientOf(subject);
    const state = patientId !== undefined ? await this.stateOf(patientId) : undefined;
    const thread = action === 'create' && after?.resourceType === 'Communication' ? await this.threadFor(actor, after) : undefined;
    const decision = decideWrite({ actor, action, ...(before ? { before } : {}), ...(after ? { after } : {}), ...(state ? { state } : {}), ...(thread ? { thread } : {}), ...(account ? { account } : {}), now: this.instant() });
    if (!decision.permit) return decision;
    if (after?.resourceType === 'Consent') {
      const foreign = await this.foreignMasks(after as Consent);
      if (foreign) return foreign;
    }
    const stamps = stampsOf([before?.resource, after]);
    return stamps.length > 0 ? { ...decision, stamps } : decision;
  }

  /**
   * The conversation a message replies in (policy/messaging.ts): its first message, when the
   * actor may read it; undefined when it is missing or hidden (the same answer for both).
   */
  private async threadFor(actor: Actor, message: Resource): Promise<{ resource: Resource; creator?: string } | undefined> {
    const id = threadOf(message);
    if (id === undefined || actor.kind === 'system') return undefined;
    const read = await this.store.read('Communication', id);
    if (read.kind !== 'found' || !read.version.resource) return undefined;
    const first = { resource: read.version.resource, ...(read.version.creator !== undefined ? { creator: read.version.creator } : {}) };
    return (await this.decide(actor, first.resource, first.creator)).permit ? first : undefined;
  }

  /**
   * A mask names documents of the Consent's own patient only: a document of another record (or
   * none) would be hidden from searches by a choice its patient never made. Every named document
   * must exist in this patient's record (documents never move to another record: write.ts).
   */
  private async foreignMasks(consent: Consent): Promise<Decision | undefined> {
    const issues: { expression: string; diagnostics: string }[] = [];
    const patientId = patientOf(consent);
    for (const [i, rule] of rulesOf(consent).entries()) {
      if (rule.kind !== 'mask') continue;
      const target = await this.store.read(rule.resourceType, rule.documentId);
      if (target.kind !== 'found' || !target.version.resource || patientOf(target.version.resource) !== patientId) {
        issues.push({ expression: `Consent.provision.data[${i}].reference`, diagnostics: `a mask names documents or profile entries of the patient's own record; ${rule.resourceType}/${rule.documentId} is not one` });
      }
    }
    return issues.length > 0 ? { permit: false, status: 422, reason: issues.map((i) => i.diagnostics).join('; '), issues } : undefined;
  }

  /**
   * The bytes of a resource (Binary.securityContext) are as writable as that resource: writing
   * them needs the right to change it. A document's bytes are created with it, in one
   * transaction (IHE MHD ITI-65), before it exists: then its own create decides. Undefined when
   * the context allows the write (the Binary's own rules then decide).
   */
  private async binaryContext(actor: Actor, binary: Binary): Promise<Decision | undefined> {
    const context = securityContextOf(binary);
    if (!context) return undefined;
    const target = await this.store.read(...context);
    if (target.kind === 'missing') return undefined;
    if (target.kind !== 'found' || !target.version.resource) return { permit: false, status: 404, reason: 'the securityContext of this Binary is not readable' };
    const verdict = await this.decideWrite(actor, 'update', { before: { resource: target.version.resource, ...(target.version.creator !== undefined ? { creator: target.version.creator } : {}) }, after: target.version.resource });
    return verdict.permit ? undefined : verdict;
  }

  /**
   * A Binary is as sensitive as the resource its securityContext names (R4 Binary: "a proxy of the
   * security sensitivity"), typically the DocumentReference whose content it is: reading the bytes
   * of a masked or hidden document is refused exactly like reading the document. A Binary without
   * securityContext is reachable only by whoever created it (and the patients, through their scopes).
   */
  private async decideBinary(actor: Actor, binary: Binary, creator?: string): Promise<Decision> {
    const context = securityContextOf(binary);
    if (!context) {
      if (actor.kind === 'patient' || actor.kind === 'representative' || creator === creatorKey(actor)) return decide({ actor, action: 'read', resource: binary, ...(creator !== undefined ? { creator } : {}), mayRead, now: this.instant() });
      return { permit: false, status: 404, reason: 'a Binary without securityContext is its creator\'s' };
    }
    const target = await this.store.read(...context);
    if (target.kind !== 'found' || !target.version.resource) return { permit: false, status: 404, reason: 'the securityContext of this Binary is not readable' };
    return this.decide(actor, target.version.resource, target.version.creator);
  }

  /**
   * Conditions that restrict a search of `type` to what `actor` may see (403 when nothing ever is).
   * `known`: the patients the search is pinned to (see known()), whose conditions need no re-check.
   */
  conditions(actor: Actor, type: string, known?: KnownPatients): Condition[] {
    return policyConditions(actor, type, readableTypes, this.instant(), known);
  }

  /**
   * The consent state of the patients a search of `type` by `actor` with criteria `where` is
   * pinned to (`DocumentReference?patient=p1`), when the restriction has conditions on them (a
   * professional's); otherwise undefined. The states are the ones decide() reads.
   */
  async known(actor: Actor, type: string, where: Condition[]): Promise<KnownPatients | undefined> {
    if (actor.kind !== 'practitioner') return undefined;
    const ids = pinnedPatients(type, where);
    if (!ids || ids.length > MAX_PINNED) return undefined;
    return { states: await Promise.all(ids.map((id) => this.stateOf(id))) };
  }
}

/**
 * No consent checks at all. Only the benchmark harness builds an app with it, to measure what the
 * policy costs (scripts/bench/policy.mjs); no configuration can select it.
 */
export class NoPolicyForBenchmark extends Policy {
  override async decide(): Promise<Decision> {
    return PERMIT;
  }

  override async decideAll(_actor: Actor, items: readonly unknown[]): Promise<Decision[]> {
    return items.map(() => PERMIT);
  }

  override async decideWrite(): Promise<Decision> {
    return PERMIT;
  }

  override conditions(): Condition[] {
    return [];
  }

  override async known(): Promise<KnownPatients | undefined> {
    return undefined;
  }
}
