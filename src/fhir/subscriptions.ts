// fhir/subscriptions: FHIR Subscriptions as the R4 Subscriptions Backport IG defines them
// (docs/notifications.md). What a Subscription write does besides being stored (subscriptionWrite:
// checked against the backport profile and Carnet's topics, its status and owner set by the
// server, a handshake asked for), and the operations $status, $events and $get-ws-binding-token.
// Deliveries are the notifier's (notify/notifier).

import type { Bundle, Parameters, Resource, Subscription } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { compartmentPatients } from '../auth/actor.js';
import { Forbidden, Invalid, ServiceUnavailable, Unprocessable } from '../base/outcome.js';
import { eventsBundle, statusSearchset, type StatusInput } from '../notify/bundle.js';
import { controlQueue, eventsQueue, handshakeOp } from '../notify/notifier.js';
import { withOwner } from '../notify/owner.js';
import { initialStatus, validateSubscription, type SubscriptionSpec } from '../notify/subscription.js';
import type { WriteOp } from '../store/port.js';
import { access, assertAllowed, assertReadable } from './access.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import type { Operation } from './operations.js';

const BACKPORT_OPERATIONS = 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/';

/**
 * Called for every permitted write of a Subscription (fhir/access assertWrite), whatever the path
 * (create, update, patch, batch, transaction): checks it (422), sets its status and owner in
 * place, and answers the writes that go with it (the handshake a rest-hook subscription needs).
 */
export function subscriptionWrite(ctx: FhirContext, actor: Actor, after: Subscription, before: Subscription | undefined): WriteOp[] {
  const spec = validateSubscription(after, ctx.topics);
  // A patient-side actor may filter on their own record(s) only: their compartment.
  const own = actor.kind === 'patient' || actor.kind === 'representative' ? compartmentPatients(actor) : undefined;
  if (own) {
    // A patient (or their representative) subscribes to their own record.
    for (const filter of spec.filters) {
      for (const criterion of filter.criteria) {
        if (criterion.parameter !== 'patient' && criterion.parameter !== 'subject') continue;
        const foreign = criterion.values.filter((v) => !own.some((id) => v === `Patient/${id}` || v === id || v.endsWith(`/Patient/${id}`)));
        if (foreign.length > 0) throw new Forbidden(`A patient subscribes to their own record: ${foreign.join(', ')} is not (${own.map((id) => `Patient/${id}`).join(', ')})`);
      }
    }
  }
  let previous: SubscriptionSpec | undefined;
  if (before) {
    try {
      previous = validateSubscription(before, ctx.topics);
    } catch {
      previous = undefined;
    }
    if (previous && previous.channel !== spec.channel) throw new Unprocessable(`Subscription.channel.type cannot change (${previous.channel} to ${spec.channel}): create a new Subscription`);
  }
  let status: SubscriptionSpec['status'];
  if (spec.status === 'off') status = 'off';
  else if (previous && previous.status === 'active' && previous.endpoint === spec.endpoint) status = 'active';
  else status = initialStatus(spec.channel);
  Object.assign(after, withOwner({ ...after, status }, actor));
  const extra: WriteOp[] = [];
  if (status === 'requested' && spec.channel === 'rest-hook' && after.id) extra.push(handshakeOp(after.id));
  return extra;
}

/** The Subscription `id` if the caller may read it (its owner): else 404, like one that does not exist. */
async function owned(ctx: FhirContext, req: FhirRequest, id: string): Promise<Subscription & { id: string }> {
  const granted = access(req, 'Subscription', 'r');
  const read = await ctx.store.read('Subscription', id);
  await assertReadable(ctx, granted, read, `Subscription/${id}`);
  if (read.kind !== 'found' || !read.version.resource) throw new Invalid(`Subscription/${id} is deleted`);
  return read.version.resource as Subscription & { id: string };
}

function specOf(ctx: FhirContext, subscription: Subscription): SubscriptionSpec {
  try {
    return validateSubscription(subscription, ctx.topics);
  } catch {
    throw new Unprocessable(`Subscription/${subscription.id} is not a valid subscription any more`);
  }
}

/** A parameter of the query or of a Parameters body. */
function parameter(req: FhirRequest, name: string): string | undefined {
  const fromQuery = req.query.find(([n]) => n === name)?.[1];
  if (fromQuery !== undefined) return fromQuery;
  const body = req.body.kind === 'json' ? (req.body.value as Partial<Parameters> | null) : null;
  const p = body && typeof body === 'object' && body.resourceType === 'Parameters' ? body.parameter?.find((x) => x.name === name) : undefined;
  const value = p?.valueString ?? p?.valueCode ?? p?.valueInteger ?? p?.valueUnsignedInt ?? p?.valuePositiveInt;
  return value === undefined ? undefined : String(value);
}

function count(req: FhirRequest, name: string): number | undefined {
  const value = parameter(req, name);
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw new Invalid(`${name} must be a non-negative integer`, name);
  return Number(value);
}

async function statusOf(ctx: FhirContext, subscription: Subscription & { id: string }): Promise<Omit<StatusInput, 'type'>> {
  const spec = specOf(ctx, subscription);
  const queue = await ctx.store.queue.status(eventsQueue(subscription.id, spec.channel));
  const control = spec.channel === 'rest-hook' ? await ctx.store.queue.status(controlQueue(subscription.id)) : undefined;
  const failed = queue.failed + (control?.failed ?? 0);
  return {
    subscriptionId: subscription.id,
    topic: spec.topic,
    status: spec.status,
    eventsSinceSubscriptionStart: queue.last,
    ...(failed > 0 ? { errors: [{ text: `${failed} notification(s) could not be delivered; set status to requested to try again` }] } : {}),
  };
}

/** $status: [id]/$status, or [type]/$status?id=a,b (the caller's own subscriptions). */
async function status(ctx: FhirContext, req: FhirRequest, ids: string[]): Promise<FhirResponse> {
  if (ids.length > 100) throw new Invalid('At most 100 subscriptions in one $status', 'id');
  const statuses = [];
  for (const id of ids) statuses.push(await statusOf(ctx, await owned(ctx, req, id)));
  const bundle: Bundle = statusSearchset(ctx.baseUrl, statuses, ctx.now());
  return { status: 200, headers: {}, resource: bundle };
}

const MAX_EVENTS = 100;

/** $events: the events of one subscription by number, each focus decided for the caller now. */
async function events(ctx: FhirContext, req: FhirRequest, id: string): Promise<FhirResponse> {
  const subscription = await owned(ctx, req, id);
  const spec = specOf(ctx, subscription);
  const queue = eventsQueue(id, spec.channel);
  const { last } = await ctx.store.queue.status(queue);
  const since = count(req, 'eventsSinceNumber') ?? Math.max(1, last - MAX_EVENTS + 1);
  const until = Math.min(count(req, 'eventsUntilNumber') ?? last, since + MAX_EVENTS - 1);
  const content = (parameter(req, 'content') ?? spec.content) as SubscriptionSpec['content'];
  if (!['empty', 'id-only', 'full-resource'].includes(content)) throw new Invalid('content must be empty, id-only or full-resource', 'content');
  const items = until >= since ? await ctx.store.queue.list(queue, since - 1, until - since + 1) : [];
  const resources = new Map<string, Resource>();
  const listed = [];
  for (const item of items) {
    const data = item.data as { focus: string; interaction: 'create' | 'update' | 'delete'; timestamp: string };
    const [type, focusId] = data.focus.split('/');
    const read = await ctx.store.read(type, focusId);
    if (read.kind !== 'found' || !read.version.resource) continue;
    // What the caller may not read now is not listed (the consent decides at every delivery).
    const granted = access(req, type, 'r');
    try {
      await assertAllowed(ctx, granted, read.version.resource, read.version.creator, data.focus);
    } catch {
      continue;
    }
    resources.set(data.focus, read.version.resource);
    listed.push({ eventNumber: item.number, timestamp: data.timestamp, focus: data.focus, interaction: data.interaction });
  }
  const bundle = eventsBundle({ subscriptionId: id, topic: spec.topic, status: spec.status, eventsSinceSubscriptionStart: last, events: listed }, { baseUrl: ctx.baseUrl, content, resources, timestamp: ctx.now() });
  return { status: 200, headers: {}, resource: bundle };
}

/** $get-ws-binding-token: a short-lived token to bind a websocket to this (websocket) subscription. */
async function bindingToken(ctx: FhirContext, req: FhirRequest, id: string): Promise<FhirResponse> {
  const subscription = await owned(ctx, req, id);
  const spec = specOf(ctx, subscription);
  if (spec.channel !== 'websocket') throw new Unprocessable(`Subscription/${id} is a ${spec.channel} subscription; a binding token is for websocket ones`);
  if (!ctx.hub) throw new ServiceUnavailable('Websocket notifications are not served by this process');
  return { status: 200, headers: {}, resource: await ctx.hub.issue([id]) };
}

const BOTH = ['GET', 'POST'] as const;

export const SUBSCRIPTION_OPERATIONS: readonly Operation[] = [
  {
    name: 'status',
    definition: `${BACKPORT_OPERATIONS}backport-subscription-status`,
    documentation: 'GET [base]/Subscription/[id]/$status, or [base]/Subscription/$status?id=a,b: the SubscriptionStatus (query-status) of the caller\'s own subscriptions: status, topic, events since start, delivery errors.',
    types: ['Subscription'],
    parameters: [
      { name: 'id', use: 'in', min: 0, max: '*', type: 'id', documentation: 'At type level: the subscriptions (comma-separated or repeated), the caller\'s own.' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset of SubscriptionStatus (Parameters).' },
    ],
    type: {
      methods: BOTH,
      handler: async (ctx, req) => {
        const ids = req.query.filter(([n]) => n === 'id').flatMap(([, v]) => v.split(',')).filter((v) => v !== '');
        if (ids.length === 0) throw new Invalid('$status at type level needs id=<subscription id>[,<id>...]', 'id');
        return status(ctx, req, ids);
      },
    },
    instance: { methods: BOTH, handler: async (ctx, req, _type, id) => status(ctx, req, [id]) },
  },
  {
    name: 'events',
    definition: `${BACKPORT_OPERATIONS}backport-subscription-events`,
    documentation: 'GET [base]/Subscription/[id]/$events?eventsSinceNumber=&eventsUntilNumber=&content=: the subscription\'s past events by number (at most 100), each one only if the caller may read its focus now.',
    types: ['Subscription'],
    parameters: [
      { name: 'eventsSinceNumber', use: 'in', min: 0, max: '1', type: 'string', documentation: 'The first event number (default: the last 100).' },
      { name: 'eventsUntilNumber', use: 'in', min: 0, max: '1', type: 'string', documentation: 'The last event number (at most 100 after the first).' },
      { name: 'content', use: 'in', min: 0, max: '1', type: 'code', documentation: 'empty, id-only or full-resource (default: the subscription\'s).' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A history Bundle: the SubscriptionStatus, then the focus of each event the caller may read now.' },
    ],
    instance: { methods: BOTH, handler: async (ctx, req, _type, id) => events(ctx, req, id) },
  },
  {
    name: 'get-ws-binding-token',
    definition: `${BACKPORT_OPERATIONS}backport-subscription-get-ws-binding-token`,
    documentation: 'GET [base]/Subscription/[id]/$get-ws-binding-token: a token (valid 5 minutes) and the websocket URL; the client connects and sends `bind-with-token <token>`.',
    types: ['Subscription'],
    parameters: [
      { name: 'token', use: 'out', min: 1, max: '1', type: 'string', documentation: 'The binding token.' },
      { name: 'expiration', use: 'out', min: 1, max: '1', type: 'dateTime', documentation: 'When the token expires.' },
      { name: 'subscription', use: 'out', min: 0, max: '*', type: 'string', documentation: 'The subscription the token binds.' },
      { name: 'websocket-url', use: 'out', min: 1, max: '1', type: 'url', documentation: 'Where to connect.' },
    ],
    instance: { methods: BOTH, handler: async (ctx, req, _type, id) => bindingToken(ctx, req, id) },
  },
];
