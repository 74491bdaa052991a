// policy: consent decisions. decide() for one resource, restrict() for a query; the access matrix;
// reading a patient's Consents (cached per patient, dropped when that patient's Consents or
// Patient resource change). Uses search/ and the store port, never fhir/ routes.

import type { Binary, Consent, Patient, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import type { Store } from '../store/port.js';
import type { Condition } from '../search/types.js';
import { patientOf, securityContextOf } from './compartment.js';
import { stateOf, type ConsentState } from './consents.js';
import { creatorKey, decide, type Action, type Decision } from './decide.js';
import { mayRead, readableTypes } from './matrix.js';
import { policyConditions } from './restrict.js';
import { pinnedPatients, type KnownPatients } from './known.js';

const MAX_STATES = 10_000;
const MAX_CONSENTS = 1_000;
/** Beyond this many patients named in one search, the query checks each candidate's patient itself. */
const MAX_PINNED = 20;

export class Policy {
  private readonly states = new Map<string, ConsentState>();
  /** Counts the invalidations: a state read while one happened may predate the write, and is not kept. */
  private generation = 0;

  constructor(private readonly store: Store) {}

  /** A patient's consent state: their Patient resource and active Consents. */
  async stateOf(patientId: string): Promise<ConsentState> {
    const cached = this.states.get(patientId);
    if (cached) return cached;
    const generation = this.generation;
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
    // Not kept: a state read while a Patient or Consent was written (it may predate the write), and
    // the state of a patient that does not exist (any search can name one: ?patient=<anything>).
    if (generation !== this.generation || !patient) return state;
    if (this.states.size >= MAX_STATES) this.states.delete(this.states.keys().next().value as string);
    this.states.set(patientId, state);
    return state;
  }

  /** May `actor` do `action` to `resource` (created by `creator`)? */
  async decide(actor: Actor, action: Action, resource: Resource, creator?: string): Promise<Decision> {
    if (resource.resourceType === 'Binary') return this.decideBinary(actor, action, resource as Binary, creator);
    const patientId = patientOf(resource);
    const state = patientId !== undefined ? await this.stateOf(patientId) : undefined;
    return decide({ actor, action, resource, ...(state ? { state } : {}), ...(creator !== undefined ? { creator } : {}), mayRead });
  }

  /**
   * A Binary is as sensitive as the resource its securityContext names (R4 Binary: "a proxy of the
   * security sensitivity"), typically the DocumentReference whose content it is: reading the bytes
   * of a masked or hidden document is refused exactly like reading the document. A Binary without
   * securityContext is reachable only by whoever created it (and the patients, through their scopes).
   */
  private async decideBinary(actor: Actor, action: Action, binary: Binary, creator?: string): Promise<Decision> {
    const context = securityContextOf(binary);
    if (!context) {
      if (actor.kind === 'patient' || actor.kind === 'representative' || action === 'create' || creator === creatorKey(actor)) return decide({ actor, action, resource: binary, ...(creator !== undefined ? { creator } : {}), mayRead });
      return { permit: false, status: 404, reason: 'a Binary without securityContext is its creator\'s' };
    }
    const target = await this.store.read(...context);
    // A document's bytes are created with it, in one transaction (IHE MHD ITI-65): the document
    // does not exist yet, and its own create is decided on its own.
    if (action === 'create' && target.kind === 'missing') return decide({ actor, action, resource: binary, mayRead });
    if (target.kind !== 'found' || !target.version.resource) return { permit: false, status: 404, reason: 'the securityContext of this Binary is not readable' };
    const verdict = await this.decide(actor, 'read', target.version.resource, target.version.creator);
    if (!verdict.permit || action === 'read') return verdict;
    return decide({ actor, action, resource: binary, ...(creator !== undefined ? { creator } : {}), mayRead });
  }

  /**
   * Conditions that restrict a search of `type` to what `actor` may see (403 when nothing ever is).
   * `known`: the patients the search is pinned to (see known()), whose conditions need no re-check.
   */
  conditions(actor: Actor, type: string, known?: KnownPatients): Condition[] {
    return policyConditions(actor, type, readableTypes, known);
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

  /** Forget the consent state of the patients whose Patient or Consent resources were written. */
  written(resources: Resource[]): void {
    for (const resource of resources) {
      if (resource.resourceType !== 'Consent' && resource.resourceType !== 'Patient') continue;
      const patientId = patientOf(resource);
      this.generation++;
      if (patientId !== undefined) this.states.delete(patientId);
    }
  }

  /** Forget everything (a delete leaves no content to say whose it was). */
  forgetAll(): void {
    this.generation++;
    this.states.clear();
  }
}

/**
 * No consent checks at all. Only the benchmark harness builds an app with it, to measure what the
 * policy costs (scripts/bench/policy.mjs); no configuration can select it.
 */
export class NoPolicyForBenchmark extends Policy {
  override async decide(): Promise<Decision> {
    return { permit: true, emergency: false };
  }

  override conditions(): Condition[] {
    return [];
  }

  override async known(): Promise<KnownPatients | undefined> {
    return undefined;
  }
}
