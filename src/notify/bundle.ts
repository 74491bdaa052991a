// notify/bundle: the Bundles of topic-based subscriptions in R4 (Subscriptions R5 Backport IG):
// the notification Bundle (type history, its first entry the SubscriptionStatus as a Parameters,
// profile backport-subscription-status-r4), the $status answer (a searchset of SubscriptionStatus)
// and the $events answer (a notification Bundle of type query-event).
//
// What a notification carries follows the subscription's payload content: `empty`, events without
// focus or context and no other entry; `id-only`, the focus and context references, and an entry
// per resource with fullUrl and request but no resource; `full-resource`, the same entries with the
// resources the caller gives (one it cannot give, e.g. a deleted one, keeps fullUrl and request).
// Pure: the caller supplies ids, times and resources.

import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, CodeableConcept, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import type { Interaction } from './topics.js';
import type { PayloadContent, SubscriptionStatusCode } from './subscription.js';

export const SUBSCRIPTION_STATUS_PROFILE = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4';
export const NOTIFICATION_PROFILE = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4';

export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

/** One event of a subscription: its number in the subscription's sequence, and what it is about. */
export interface NotificationEvent {
  /** 1, 2, ...: the subscription's event counter when the event happened. */
  eventNumber: number;
  /** When the event happened (instant). */
  timestamp: string;
  /** The resource the event is about, `Type/id`. */
  focus?: string;
  /** The interaction that changed the focus (the entry's request.method: POST, PUT, DELETE). */
  interaction?: Interaction;
  /** Other resources relevant to the event, `Type/id` each. */
  additionalContext?: string[];
}

/** What a SubscriptionStatus says. */
export interface StatusInput {
  subscriptionId: string;
  /** The topic's canonical URL. */
  topic: string;
  status: SubscriptionStatusCode;
  type: NotificationType;
  /** Events generated since the subscription started (not counting handshakes and heartbeats). */
  eventsSinceSubscriptionStart: number;
  events?: NotificationEvent[];
  errors?: CodeableConcept[];
}

export interface NotificationOptions {
  /** The FHIR base URL (no trailing slash): fullUrls and the status entry's request.url. */
  baseUrl: string;
  content: PayloadContent;
  /** full-resource: the resources of the events, by `Type/id` (a missing one gets an entry without resource). */
  resources?: ReadonlyMap<string, Resource>;
  /** The Bundle's timestamp (now when absent). */
  timestamp?: string;
}

function subscriptionUrl(baseUrl: string, id: string): string {
  return `${baseUrl}/Subscription/${id}`;
}

/**
 * The SubscriptionStatus (an R4 Parameters). With `empty` content the events carry no reference
 * and the topic is left out (the profile: SHOULD NOT be present for empty payloads).
 */
export function subscriptionStatus(baseUrl: string, input: StatusInput, content: PayloadContent = 'id-only'): Parameters {
  const parameter: ParametersParameter[] = [{ name: 'subscription', valueReference: { reference: subscriptionUrl(baseUrl, input.subscriptionId) } }];
  if (content !== 'empty') parameter.push({ name: 'topic', valueCanonical: input.topic });
  parameter.push(
    { name: 'status', valueCode: input.status },
    { name: 'type', valueCode: input.type },
    { name: 'events-since-subscription-start', valueString: String(input.eventsSinceSubscriptionStart) },
  );
  for (const event of input.events ?? []) {
    const part: ParametersParameter[] = [
      { name: 'event-number', valueString: String(event.eventNumber) },
      { name: 'timestamp', valueInstant: event.timestamp },
    ];
    if (content !== 'empty') {
      if (event.focus) part.push({ name: 'focus', valueReference: { reference: `${baseUrl}/${event.focus}` } });
      for (const context of event.additionalContext ?? []) part.push({ name: 'additional-context', valueReference: { reference: `${baseUrl}/${context}` } });
    }
    parameter.push({ name: 'notification-event', part });
  }
  for (const error of input.errors ?? []) parameter.push({ name: 'error', valueCodeableConcept: error });
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [SUBSCRIPTION_STATUS_PROFILE] }, parameter };
}

const METHODS: Record<Interaction, 'POST' | 'PUT' | 'DELETE'> = { create: 'POST', update: 'PUT', delete: 'DELETE' };

/** The entry of one resource of a notification: fullUrl and request, and the resource for full-resource content. */
function resourceEntry(options: NotificationOptions, reference: string, interaction: Interaction | undefined): BundleEntry {
  const type = reference.slice(0, reference.indexOf('/'));
  const method = interaction ? METHODS[interaction] : 'GET';
  const resource = options.content === 'full-resource' ? options.resources?.get(reference) : undefined;
  return {
    fullUrl: `${options.baseUrl}/${reference}`,
    ...(resource ? { resource } : {}),
    request: { method, url: method === 'POST' ? type : reference },
  };
}

/**
 * A notification Bundle (type history): the SubscriptionStatus first, then, unless the content is
 * empty, one entry per distinct focus and additional-context resource of the events.
 */
export function notificationBundle(input: StatusInput, options: NotificationOptions): Bundle {
  const status = subscriptionStatus(options.baseUrl, input, options.content);
  const entry: BundleEntry[] = [
    {
      fullUrl: `urn:uuid:${status.id}`,
      resource: status,
      request: { method: 'GET', url: `${subscriptionUrl(options.baseUrl, input.subscriptionId)}/$status` },
      response: { status: '200' },
    },
  ];
  if (options.content !== 'empty') {
    const seen = new Set<string>();
    for (const event of input.events ?? []) {
      const references: [string, Interaction | undefined][] = [
        ...(event.focus ? [[event.focus, event.interaction] as [string, Interaction | undefined]] : []),
        ...(event.additionalContext ?? []).map((r): [string, Interaction | undefined] => [r, undefined]),
      ];
      for (const [reference, interaction] of references) {
        if (seen.has(reference)) continue;
        seen.add(reference);
        entry.push(resourceEntry(options, reference, interaction));
      }
    }
  }
  return { resourceType: 'Bundle', id: randomUUID(), meta: { profile: [NOTIFICATION_PROFILE] }, type: 'history', timestamp: options.timestamp ?? new Date().toISOString(), entry };
}

/** A handshake: no event, sent when a rest-hook subscription is verified or a websocket binds. */
export function handshakeBundle(subscription: Omit<StatusInput, 'type' | 'events'>, options: NotificationOptions): Bundle {
  return notificationBundle({ ...subscription, type: 'handshake', events: [] }, options);
}

/** A heartbeat: no event, sent every heartbeat period without other notification. */
export function heartbeatBundle(subscription: Omit<StatusInput, 'type' | 'events'>, options: NotificationOptions): Bundle {
  return notificationBundle({ ...subscription, type: 'heartbeat', events: [] }, options);
}

/** The answer of `$status`: a searchset with one SubscriptionStatus (type query-status) per subscription. */
export function statusSearchset(baseUrl: string, statuses: readonly Omit<StatusInput, 'type'>[], timestamp: string = new Date().toISOString()): Bundle {
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    type: 'searchset',
    timestamp,
    total: statuses.length,
    entry: statuses.map((s) => {
      const resource = subscriptionStatus(baseUrl, { ...s, type: 'query-status', events: [] });
      return { fullUrl: `urn:uuid:${resource.id}`, resource, search: { mode: 'match' } };
    }),
  };
}

/** The answer of `$events`: a notification Bundle of type query-event with the events asked for. */
export function eventsBundle(input: Omit<StatusInput, 'type'>, options: NotificationOptions): Bundle {
  return notificationBundle({ ...input, type: 'query-event' }, options);
}

/** The SubscriptionStatus of a notification Bundle (its first entry), or undefined when it has none. */
export function statusOf(bundle: Bundle): Parameters | undefined {
  const first = bundle.entry?.[0]?.resource;
  return first?.resourceType === 'Parameters' ? first : undefined;
}
