// notify/notifier: turns what the store committed into notifications and delivers them, the same on
// every process of a deployment (docs/notifications.md).
//
// The outbox is the store's own change feed (Store.changes): every committed version, in commit
// order, an AuditEvent of every access among them, each written in the transaction (or the durable
// journal) of what it records. The notifier moves a cursor along it with compare-and-set
// (a `cursor` op): the notifications and subscription events derived from a batch of changes
// commit in the same transaction as the cursor's move, so they are derived exactly once, whichever
// process gets there first, and a kill -9 loses none (the cursor did not move).
//
// Fan-out (derive): for each access record, the patient's notices (notify/access), coalesced per
// window, become Communications in their inbox and, when the patient chose push, events of their
// `record-access` subscriptions; for each other change, an event of every active subscription
// whose topic and filters it matches and whose owner may read it now (the consent policy).
//
// Delivery: each subscription has a durable queue of numbered events (the events-since-start
// numbers). A process leases the head of a queue (Store.queue.claim), decides again whether the
// owner may read the focus (a permit revoked since stops deliveries at once: the event is
// withheld), sends it (rest-hook POST, or the websocket bound in this process), and settles it:
// done, retried with exponential backoff, or failed after maxAttempts, which sets the
// subscription to `error` and stalls its queue until the owner asks for it again (status
// `requested`): nothing is lost meanwhile. A lease that expires (a process died mid-delivery) is
// taken by another process: delivery is at least once, and the event number lets the subscriber
// drop a repeat.

import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Bundle, Communication, HumanName, Organization, Patient, Practitioner, Resource, Subscription } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { authorize } from '../auth/authorize.js';
import { compartmentFree, inCompartment, patientOf } from '../policy/compartment.js';
import { CONFIDENTIAL_FROM_REPRESENTATIVES, hasLabel, NOTIFICATION_CREATOR, takesPart } from '../policy/decide.js';
import type { Policy } from '../policy/index.js';
import { SUBSCRIPTIONS_STAMP } from '../policy/index.js';
import { professionDisplay } from '../policy/matrix.js';
import { preferencesOf } from '../policy/preferences.js';
import { indexEntries } from '../search/extract.js';
import { parseSearch } from '../search/plan.js';
import { WriteConflict, type QueuedItem, type Store, type Version, type WriteOp } from '../store/port.js';
import { deliveryOf, noticesOf, notificationOf, opensNotification, windowKey, type Notice, type WhoIs } from './access.js';
import { handshakeBundle, heartbeatBundle, notificationBundle } from './bundle.js';
import { deliver, OriginLimiter, type AllowList, type Resolver } from './rest-hook.js';
import { validateSubscription, type SubscriptionSpec } from './subscription.js';
import { filterMatches, matches, type Interaction, type TopicRegistry } from './topics.js';
import { ownerOf } from './owner.js';
import type { WsHub } from './websocket.js';
import type { GroupCommit } from '../audit/group-commit.js';
import { auditEvent } from '../audit/event.js';
import { auditEventId } from '../audit/id.js';

/** The topic whose events are the patient's access notifications (notify/access). */
export const RECORD_ACCESS_TOPIC = 'https://carnet.example.org/fhir/SubscriptionTopic/record-access';
/** The topic of new messages: the server's own notifications go through record-access instead. */
const COMMUNICATION_TOPIC = 'https://carnet.example.org/fhir/SubscriptionTopic/communication';
/** Identifies a notification's window (its key) so that the next access finds it. */
export const WINDOW_SYSTEM = 'urn:carnet:notification-window';
const CURSOR = 'notify';
/** Deliveries a process takes at once (each to its endpoint, at most `concurrency` per origin at a time). */
const CLAIM = 128;
/** Window keys remembered between batches, at most. */
const MAX_WINDOWS = 100_000;

export interface NotifierSettings {
  /** Accesses by one agent to one record of one kind within this window form one notification. */
  windowMs: number;
  /** How often each process looks for new changes and due deliveries. */
  pollMs: number;
  /** How long a claimed delivery is held before another process may take it. */
  leaseMs: number;
  /** Attempts before a subscription is set to error. */
  maxAttempts: number;
  /** First retry delay; doubled at each attempt, up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Changes derived per transaction. */
  batch: number;
  /** The server's limit of one delivery attempt (a subscription's own timeout may be shorter). */
  timeoutMs: number;
  /** Endpoints allowed despite being internal addresses (notify/rest-hook). */
  allow: AllowList;
  /** Concurrent deliveries per endpoint origin, per process. */
  concurrency: number;
  /** Host name resolution (tests). */
  resolve?: Resolver;
}

export const DEFAULT_NOTIFIER: Omit<NotifierSettings, 'allow'> = {
  windowMs: 3_600_000,
  pollMs: 2_000,
  leaseMs: 30_000,
  maxAttempts: 6,
  retryBaseMs: 1_000,
  retryMaxMs: 600_000,
  batch: 200,
  timeoutMs: 10_000,
  concurrency: 4,
};

/** An event in a subscription's queue: what the notification will say. */
interface EventData {
  focus: string;
  interaction: Interaction;
  timestamp: string;
}

/** An active subscription, as the fan-out uses it. */
interface Active {
  id: string;
  spec: SubscriptionSpec;
  owner: Actor;
}

/** The active subscriptions of one topic: those filtered on a patient, by that patient's reference, and the others. */
interface TopicSubscribers {
  byPatient: Map<string, Active[]>;
  others: Active[];
}

/** `Patient/<id>` for a patient filter value (`Patient/p1`, `p1`, or an absolute URL). */
function patientKey(value: string): string {
  const at = value.lastIndexOf('Patient/');
  return at >= 0 ? value.slice(at) : `Patient/${value}`;
}

/** The subscriptions by topic, and within a topic by the patient their filter names (one lookup per change, not a scan). */
function byTopic(active: Active[]): Map<string, TopicSubscribers> {
  const topics = new Map<string, TopicSubscribers>();
  for (const subscription of active) {
    const entry: TopicSubscribers = topics.get(subscription.spec.topic) ?? { byPatient: new Map(), others: [] };
    topics.set(subscription.spec.topic, entry);
    const criterion = subscription.spec.filters.flatMap((f) => f.criteria).find((c) => c.parameter === 'patient' && c.modifier === undefined);
    if (!criterion) {
      entry.others.push(subscription);
      continue;
    }
    for (const value of new Set(criterion.values.map(patientKey))) {
      const list = entry.byPatient.get(value) ?? [];
      list.push(subscription);
      entry.byPatient.set(value, list);
    }
  }
  return topics;
}

/** The queue of a subscription's events (its numbers are the events-since-start numbers). */
export function eventsQueue(id: string, channel: SubscriptionSpec['channel']): string {
  return `${channel === 'rest-hook' ? 'hook' : 'ws'}/${id}/events`;
}

/** The queue of a rest-hook subscription's handshakes (requested → active). */
export function controlQueue(id: string): string {
  return `hook/${id}/control`;
}

/** The write that asks for a handshake, in the transaction of the Subscription write that needs it. */
export function handshakeOp(id: string): WriteOp {
  return { kind: 'enqueue', queue: controlQueue(id), data: { handshake: true } };
}

function nameOf(name: HumanName[] | undefined): string | undefined {
  const first = name?.[0];
  if (!first) return undefined;
  if (first.text) return first.text;
  const parts = [...(first.prefix ?? []), ...(first.given ?? []), first.family].filter((p): p is string => !!p);
  return parts.length > 0 ? parts.join(' ') : undefined;
}

export interface NotifierDeps {
  store: Store;
  /** The consent policy: every event is decided for its subscription's owner. */
  policy: Policy;
  topics: TopicRegistry;
  settings: NotifierSettings;
  /** The public FHIR base (fullUrls of the notifications). */
  baseUrl: () => string;
  /** The server's clock (windows, retries, leases). */
  now: () => string;
  /** This process's websocket channel. */
  hub?: WsHub;
  /** Where the record of each delivered event goes (the access log): a delivery discloses what it is about. */
  auditLog?: GroupCommit;
  log?: (message: string) => void;
}

export class Notifier {
  /** Who this process is, in leases. */
  readonly owner = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly limiter: OriginLimiter;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** The tail of this notifier's rounds (exclusive()). */
  private queue: Promise<void> = Promise.resolve();
  private subscriptions: { stamp: number; active: Active[]; byTopic: Map<string, TopicSubscribers> } | undefined;
  /** When each subscription last got something from this process (heartbeats). */
  private readonly lastSent = new Map<string, number>();
  /**
   * When the last notification of each window key was sent (null: none), as of the cursor
   * position `windowsAt`: one search per key, not one per access, while this process derives.
   */
  private readonly windows = new Map<string, string | null>();
  private windowsAt = -1;

  private readonly store: Store;
  private readonly policy: Policy;
  private readonly topics: TopicRegistry;
  private readonly settings: NotifierSettings;
  private readonly baseUrl: () => string;
  private readonly now: () => string;
  private readonly hub: WsHub | undefined;
  private readonly auditLog: GroupCommit | undefined;
  private readonly log: (message: string) => void;

  constructor(deps: NotifierDeps) {
    this.store = deps.store;
    this.policy = deps.policy;
    this.topics = deps.topics;
    this.settings = deps.settings;
    this.baseUrl = deps.baseUrl;
    this.now = deps.now;
    this.hub = deps.hub;
    this.auditLog = deps.auditLog;
    this.log = deps.log ?? (() => {});
    this.limiter = new OriginLimiter(this.settings.concurrency);
    this.hub?.onBind(() => this.kick());
  }

  /** Starts polling (every process of a deployment runs one; leases and cursors keep them apart). */
  start(): void {
    this.timer ??= setInterval(() => this.kick(), this.settings.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs a round now (or right after the one running). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.round()
      .catch((error: unknown) => this.log(`notifier: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /**
   * Moves the cursor past every change committed so far without deriving anything from them: a
   * history written by the dataset generator (src/seed) that is not to fill the inboxes. Finds the
   * last change with O(log n) one-change reads. Answers how many changes it skipped.
   */
  async skipCommitted(): Promise<number> {
    const from = await this.store.cursor(CURSOR);
    const after = async (seq: number) => (await this.store.changes(seq, 1)).length > 0;
    let high = from + 1;
    while (await after(high)) high *= 2;
    let low = from;
    // The last seq is the least `x` with nothing after it, in [low, high].
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      if (await after(mid)) low = mid + 1;
      else high = mid;
    }
    if (high > from) await this.store.transact([{ kind: 'cursor', name: CURSOR, from, to: high }], this.now());
    return high - from;
  }

  /** Derives and delivers until nothing is left that is due now (tests, and a clean stop). */
  drain(rounds = 100): Promise<void> {
    return this.exclusive(async () => {
      for (let i = 0; i < rounds; i++) {
        const derived = await this.fanOut();
        const delivered = await this.deliverDue();
        if (derived === 0 && delivered === 0) return;
      }
    });
  }

  /**
   * Runs `work` after every round this notifier started before: one round at a time per process
   * (a process holding a lease renews it when it claims again, so two of its own rounds could
   * deliver the same event twice). Other processes are kept apart by the store.
   */
  private exclusive(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private round(): Promise<void> {
    return this.exclusive(async () => {
      // Batch after batch, each after a turn of the event loop: the requests waiting meanwhile go first.
      while ((await this.fanOut()) >= this.settings.batch) await new Promise((resolve) => setImmediate(resolve));
      while ((await this.deliverDue()) > 0);
      await this.heartbeats();
    });
  }

  // -------------------------------------------------------------------------------------------
  // Fan-out

  /** Derives the notifications and events of the next batch of changes; answers how many changes it took. */
  async fanOut(): Promise<number> {
    const from = await this.store.cursor(CURSOR);
    const changes = await this.store.changes(from, this.settings.batch);
    if (changes.length === 0) return 0;
    const ops: WriteOp[] = [];
    const subscribed = await this.subscribed();
    // The windows this process knows stay true while no other process derived since its last batch.
    if (from !== this.windowsAt || this.windows.size > MAX_WINDOWS) this.windows.clear();
    const batch = { opened: this.windows, patients: new Map<string, Patient | undefined>() };
    for (const { version } of changes) {
      const resource = version.resource;
      if (!resource) continue; // a delete: topics fire on the status changes that precede it
      if (resource.resourceType === 'AuditEvent') {
        if (version.versionId === 1) await this.notices(version as Version & { resource: Resource }, subscribed.byTopic.get(RECORD_ACCESS_TOPIC), batch, ops);
        continue;
      }
      await this.topicEvents(version as Version & { resource: Resource }, subscribed.byTopic, ops);
    }
    const to = changes[changes.length - 1].seq;
    ops.push({ kind: 'cursor', name: CURSOR, from, to });
    try {
      await this.store.transact(ops, this.now());
    } catch (error) {
      this.windowsAt = -1;
      // Another process derived these changes first: nothing to do.
      if (error instanceof WriteConflict) return 0;
      throw error;
    }
    this.windowsAt = to;
    return changes.length;
  }

  /** The active subscriptions, read again whenever a Subscription was written (the `subscriptions` stamp). */
  private async active(): Promise<Active[]> {
    return (await this.subscribed()).active;
  }

  private async subscribed(): Promise<{ active: Active[]; byTopic: Map<string, TopicSubscribers> }> {
    const [stamp] = await this.store.stamps([SUBSCRIPTIONS_STAMP]);
    if (this.subscriptions?.stamp === stamp) return this.subscriptions;
    const active: Active[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.store.search(parseSearch(['Subscription'], [['status', 'active']], false).plan, { count: 1000, ...(cursor ? { cursor } : {}) });
      for (const match of page.matches) {
        const subscription = match.resource as Subscription;
        const owner = ownerOf(subscription);
        if (!owner) continue;
        try {
          active.push({ id: match.id, spec: validateSubscription(subscription, this.topics), owner });
        } catch {
          this.log(`notifier: Subscription/${match.id} no longer validates; skipped`);
        }
      }
      cursor = page.next;
    } while (cursor);
    this.subscriptions = { stamp, active, byTopic: byTopic(active) };
    return this.subscriptions;
  }

  /** Whether `owner` may read `resource` now: their scopes, their compartment, the consent policy. */
  async mayRead(owner: Actor, resource: Resource, creator: string | undefined): Promise<boolean> {
    try {
      const granted = authorize(owner, resource.resourceType, 'r');
      if (granted.compartment && !compartmentFree(resource.resourceType) && !inCompartment(resource, granted.compartment)) return false;
    } catch {
      return false;
    }
    return (await this.policy.decide(owner, resource, creator)).permit;
  }

  private event(subscription: Active, focus: string, interaction: Interaction, timestamp: string): WriteOp {
    const data: EventData = { focus, interaction, timestamp };
    return { kind: 'enqueue', queue: eventsQueue(subscription.id, subscription.spec.channel), data };
  }

  /** The subscribers of `topic` a resource of this patient may concern. */
  private candidates(subscribers: TopicSubscribers | undefined, resource: Resource): Active[] {
    if (!subscribers) return [];
    const patient = patientOf(resource);
    const filtered = patient !== undefined ? (subscribers.byPatient.get(`Patient/${patient}`) ?? []) : [];
    return filtered.length === 0 ? subscribers.others : [...filtered, ...subscribers.others];
  }

  private async topicEvents(version: Version & { resource: Resource }, byTopic: Map<string, TopicSubscribers>, ops: WriteOp[]): Promise<void> {
    const interaction: Interaction = version.versionId === 1 ? 'create' : 'update';
    const resource = version.resource;
    let before: Resource | undefined | null = null;
    for (const [url, subscribers] of byTopic) {
      if (url === RECORD_ACCESS_TOPIC) continue;
      const topic = this.topics.get(url);
      if (!topic || !topic.triggers.some((t) => t.resource === resource.resourceType)) continue;
      const candidates = this.candidates(subscribers, resource);
      if (candidates.length === 0) continue;
      if (before === null) before = interaction === 'update' ? await this.previous(version) : undefined;
      if (!matches(topic, { interaction, after: resource, ...(before ? { before } : {}) })) continue;
      for (const subscription of candidates) {
        if (!filterMatches(subscription.spec.filters, resource)) continue;
        if (url === COMMUNICATION_TOPIC && !this.participates(subscription.owner, resource, version.creator)) continue;
        if (!(await this.mayRead(subscription.owner, resource, version.creator))) continue;
        ops.push(this.event(subscription, `${version.type}/${version.id}`, interaction, version.lastUpdated));
      }
    }
  }

  private async previous(version: Version): Promise<Resource | undefined> {
    const read = await this.store.readVersion(version.type, version.id, version.versionId - 1);
    return read.kind === 'found' ? read.version.resource : undefined;
  }

  /**
   * A message of a conversation the owner takes part in (its sender or a recipient, as the
   * policy reads it: a representative for their patients); not the server's own notifications.
   */
  private participates(owner: Actor, resource: Resource, creator: string | undefined): boolean {
    if (creator === NOTIFICATION_CREATOR) return false;
    return owner.kind === 'system' || takesPart(owner, resource);
  }

  private async notices(
    version: Version & { resource: Resource },
    subscribers: TopicSubscribers | undefined,
    batch: { opened: Map<string, string | null>; patients: Map<string, Patient | undefined> },
    ops: WriteOp[],
  ): Promise<void> {
    for (const notice of noticesOf(version.resource as Parameters<typeof noticesOf>[0])) {
      if (!batch.patients.has(notice.patientId)) {
        const read = await this.store.read('Patient', notice.patientId);
        batch.patients.set(notice.patientId, read.kind === 'found' ? (read.version.resource as Patient) : undefined);
      }
      const patient = batch.patients.get(notice.patientId);
      if (!patient) continue;
      const delivery = deliveryOf(notice, preferencesOf(patient));
      if (delivery === 'none') continue;
      // An access to what is kept from the patient's representatives is notified apart, and its
      // notification is kept from them too (as its access record is: docs/consent.md).
      const confidential = hasLabel(version.resource, CONFIDENTIAL_FROM_REPRESENTATIVES);
      const key = `${windowKey(notice)}${confidential ? ' confidential' : ''}`;
      let last = batch.opened.get(key);
      if (last === undefined) batch.opened.set(key, (last = (await this.lastOpened(key)) ?? null));
      if (!opensNotification(notice, last ?? undefined, this.settings.windowMs)) continue;
      batch.opened.set(key, notice.at);
      const communication = {
        ...notificationOf(notice, await this.whoIs(notice), randomUUID()),
        identifier: [{ system: WINDOW_SYSTEM, value: key }],
        ...(confidential ? { meta: { security: [CONFIDENTIAL_FROM_REPRESENTATIVES] } } : {}),
      };
      ops.push({ kind: 'create', resource: communication, index: indexEntries(communication), creator: NOTIFICATION_CREATOR });
      if (delivery !== 'push') continue;
      for (const subscription of this.candidates(subscribers, communication)) {
        if (!filterMatches(subscription.spec.filters, communication)) continue;
        if (!(await this.mayRead(subscription.owner, communication, NOTIFICATION_CREATOR))) continue;
        ops.push(this.event(subscription, `Communication/${communication.id}`, 'create', notice.at));
      }
    }
  }

  /** When the last notification of this window key was sent (its `sent`), if any. */
  private async lastOpened(key: string): Promise<string | undefined> {
    const plan = parseSearch(['Communication'], [['identifier', `${WINDOW_SYSTEM}|${key}`], ['_sort', '-sent']], false).plan;
    const page = await this.store.search(plan, { count: 1 });
    return (page.matches[0]?.resource as Communication | undefined)?.sent;
  }

  /** Who accessed, from the directory: name, profession, organisation. */
  private async whoIs(notice: Notice): Promise<WhoIs> {
    const who: WhoIs = {};
    if (notice.agent.startsWith('Practitioner/')) {
      const read = await this.store.read('Practitioner', notice.agent.slice('Practitioner/'.length));
      const name = read.kind === 'found' ? nameOf((read.version.resource as Practitioner).name) : undefined;
      if (name) who.name = name;
      const profession = notice.profession ? (professionDisplay(notice.profession) ?? notice.profession) : undefined;
      if (profession) who.profession = profession;
    } else if (notice.agent.startsWith('client:')) {
      const client = await this.store.clients.get(notice.agent.slice('client:'.length));
      if (client) who.name = client.name;
    }
    if (notice.organizationId) {
      const read = await this.store.read('Organization', notice.organizationId);
      const name = read.kind === 'found' ? (read.version.resource as Organization).name : undefined;
      if (name) who.organization = name;
    }
    return who;
  }

  // -------------------------------------------------------------------------------------------
  // Delivery

  /** Claims the due heads of the queues this process delivers and delivers them; answers how many. */
  async deliverDue(): Promise<number> {
    const now = this.now();
    const items = [...(await this.store.queue.claim(this.owner, now, this.settings.leaseMs, CLAIM, 'hook/'))];
    for (const id of this.hub?.bound() ?? []) items.push(...(await this.store.queue.claim(this.owner, now, this.settings.leaseMs, CLAIM, `ws/${id}/`)));
    await Promise.all(items.map((item) => this.deliverOne(item)));
    return items.length;
  }

  private async settle(item: QueuedItem, outcome: Parameters<Store['queue']['settle']>[4]): Promise<void> {
    if (!(await this.store.queue.settle(item.queue, item.number, this.owner, this.now(), outcome))) this.log(`notifier: lost the lease of ${item.queue} #${item.number}`);
  }

  private async deliverOne(item: QueuedItem): Promise<void> {
    const [channel, id, kind] = item.queue.split('/');
    const read = await this.store.read('Subscription', id);
    const subscription = read.kind === 'found' ? (read.version.resource as Subscription) : undefined;
    const owner = subscription ? ownerOf(subscription) : undefined;
    let spec: SubscriptionSpec | undefined;
    try {
      spec = subscription ? validateSubscription(subscription, this.topics) : undefined;
    } catch {
      spec = undefined;
    }
    // Deleted, turned off or ended: nothing to deliver to (the events stay listed by $events).
    const ended = spec?.end !== undefined && Date.parse(spec.end) <= Date.parse(this.now());
    if (!subscription || !spec || !owner || spec.status === 'off' || ended) return this.settle(item, { kind: 'done' });
    const base = this.baseUrl();
    const eventsSince = async () => (await this.store.queue.status(eventsQueue(id, spec.channel))).last;
    let bundle: Bundle;
    if (kind === 'control') {
      bundle = handshakeBundle({ subscriptionId: id, topic: spec.topic, status: subscription.status as SubscriptionSpec['status'], eventsSinceSubscriptionStart: await eventsSince() }, { baseUrl: base, content: spec.content, timestamp: this.now() });
    } else {
      const data = item.data as EventData;
      const [type, focusId] = data.focus.split('/');
      const focus = await this.store.read(type, focusId);
      // The consent decided at delivery: what the owner may no longer read is withheld.
      if (focus.kind !== 'found' || !focus.version.resource || !(await this.mayRead(owner, focus.version.resource, focus.version.creator))) return this.settle(item, { kind: 'done' });
      bundle = notificationBundle(
        {
          subscriptionId: id,
          topic: spec.topic,
          status: 'active',
          type: 'event-notification',
          eventsSinceSubscriptionStart: item.number,
          events: [{ eventNumber: item.number, timestamp: data.timestamp, focus: data.focus, interaction: data.interaction }],
        },
        { baseUrl: base, content: spec.content, resources: new Map([[data.focus, focus.version.resource]]), timestamp: this.now() },
      );
    }
    const disclosed = kind === 'control' ? undefined : (item.data as EventData).focus;
    if (channel === 'ws') {
      const sent = this.hub?.send(id, bundle) ?? 0;
      if (sent > 0) {
        this.lastSent.set(id, Date.now());
        await this.audited(owner, id, disclosed);
      }
      return this.settle(item, sent > 0 ? { kind: 'done' } : { kind: 'retry', due: this.later(1), error: 'no socket bound' });
    }
    if (!spec.endpoint) return this.settle(item, { kind: 'failed', error: 'no endpoint' });
    const timeoutMs = Math.min(this.settings.timeoutMs, (spec.timeoutSeconds ?? Infinity) * 1000);
    const result = await deliver(spec.endpoint, spec.headers, bundle, { timeoutMs, allow: this.settings.allow, mimeType: spec.mimeType, limiter: this.limiter, ...(this.settings.resolve ? { resolve: this.settings.resolve } : {}) });
    if (result.ok) {
      this.lastSent.set(id, Date.now());
      await this.audited(owner, id, disclosed);
      await this.settle(item, { kind: 'done' });
      if (kind === 'control') {
        // Verified: the subscription is active, and what waited while it was in error goes again.
        await this.setStatus(id, 'active');
        await this.store.queue.resume(eventsQueue(id, spec.channel), this.now());
      }
      return;
    }
    const error = `${result.reason}${result.status ? ` ${result.status}` : ''}`;
    const attempts = item.attempts + 1;
    if (attempts >= this.settings.maxAttempts || result.reason === 'refused') {
      await this.settle(item, { kind: 'failed', error });
      await this.setStatus(id, 'error');
      this.log(`notifier: Subscription/${id} set to error after ${attempts} attempts (${error})`);
      return;
    }
    await this.settle(item, { kind: 'retry', due: this.later(Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** (attempts - 1)) / 1000), error });
  }

  /**
   * Records a delivered event in the access log, as the owner's access to its focus (an operation,
   * `subscription-notification`): the subscriber learned of it, or received it. Written after the
   * delivery and before it is settled: a crash in between redelivers it, and records it then. The
   * patient's own notifications (record-access) are theirs and need no record.
   */
  private async audited(owner: Actor, subscriptionId: string, focus: string | undefined): Promise<void> {
    if (!this.auditLog || !focus || owner.kind === 'patient' || owner.kind === 'representative') return;
    const [type, id] = focus.split('/');
    const read = await this.store.read(type, id);
    const patient = read.kind === 'found' && read.version.resource ? patientOf(read.version.resource) : undefined;
    const record = auditEvent({
      actor: owner,
      interaction: 'operation',
      outcome: 'success',
      patients: patient !== undefined ? [patient] : [],
      resources: [focus, `Subscription/${subscriptionId}`],
      transaction: { system: 'urn:carnet:interaction', code: 'subscription-notification', display: 'subscription notification delivered' },
      recorded: this.now(),
      server: this.baseUrl(),
    });
    await this.auditLog.write({ ...record, id: auditEventId() });
  }

  private later(seconds: number): string {
    return new Date(Date.parse(this.now()) + seconds * 1000).toISOString();
  }

  /** The server sets a subscription's status (handshake done, repeated failures); the owner's other content stays. */
  private async setStatus(id: string, status: 'active' | 'error'): Promise<void> {
    const read = await this.store.read('Subscription', id);
    if (read.kind !== 'found' || !read.version.resource) return;
    const current = read.version.resource as Subscription;
    if (current.status === status || current.status === 'off') return;
    const { meta: _meta, ...rest } = current;
    const next = { ...rest, id, status } as Subscription & { id: string };
    try {
      await this.store.transact([{ kind: 'update', resource: next, index: indexEntries(next), expectedVersion: read.version.versionId }, { kind: 'stamp', key: SUBSCRIPTIONS_STAMP }], this.now());
    } catch (error) {
      if (!(error instanceof WriteConflict)) throw error;
    }
  }

  /** Heartbeats of the subscriptions that ask for them: rest-hook ones by the process holding the lease, websocket ones where bound. */
  private async heartbeats(): Promise<void> {
    const active = (await this.active()).filter((s) => s.spec.heartbeatSeconds !== undefined);
    if (active.length === 0) return;
    const now = Date.now();
    const leader = await this.store.lease('notify:heartbeats', this.owner, this.now(), Math.max(this.settings.pollMs * 4, 2_000));
    const bound = new Set(this.hub?.bound() ?? []);
    for (const subscription of active) {
      const { id, spec } = subscription;
      if (spec.channel === 'rest-hook' ? !leader : !bound.has(id)) continue;
      const last = this.lastSent.get(id);
      if (last === undefined) {
        this.lastSent.set(id, now);
        continue;
      }
      if (now - last < (spec.heartbeatSeconds as number) * 1000) continue;
      this.lastSent.set(id, now);
      const bundle = heartbeatBundle(
        { subscriptionId: id, topic: spec.topic, status: 'active', eventsSinceSubscriptionStart: (await this.store.queue.status(eventsQueue(id, spec.channel))).last },
        { baseUrl: this.baseUrl(), content: spec.content, timestamp: this.now() },
      );
      if (spec.channel === 'websocket') this.hub?.send(id, bundle);
      else if (spec.endpoint) await deliver(spec.endpoint, spec.headers, bundle, { timeoutMs: this.settings.timeoutMs, allow: this.settings.allow, mimeType: spec.mimeType, limiter: this.limiter, ...(this.settings.resolve ? { resolve: this.settings.resolve } : {}) });
    }
  }
}
