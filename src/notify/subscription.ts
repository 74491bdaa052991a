// notify/subscription: a Subscription checked against the R4 backport profile
// (http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription) and
// Carnet's rules, then normalised into the SubscriptionSpec the dispatcher and the channels use.
//
// Carnet's rules on top of the profile: the criteria name one of Carnet's topics; filters use only
// the topic's declared filter parameters; the channel is rest-hook or websocket (email, sms,
// message and custom channels are refused); a rest-hook endpoint is an absolute http(s) URL, and
// full-resource content is refused over plain http (the IG: a server SHOULD reject a payload type
// it will not honour). Every problem is reported at once, as one 422 OperationOutcome.

import type { Extension, Subscription } from '@medplum/fhirtypes';
import { Unprocessable, type Issue } from '../base/outcome.js';
import { parseFilterCriteria, type FilterCriteria, type Topic, type TopicRegistry } from './topics.js';

const IG = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';

/** The backport IG's extensions a Subscription carries. */
export const EXTENSIONS = {
  filterCriteria: `${IG}backport-filter-criteria`,
  payloadContent: `${IG}backport-payload-content`,
  heartbeatPeriod: `${IG}backport-heartbeat-period`,
  timeout: `${IG}backport-timeout`,
  maxCount: `${IG}backport-max-count`,
  channelType: `${IG}backport-channel-type`,
} as const;

export const BACKPORT_SUBSCRIPTION_PROFILE = `${IG}backport-subscription`;

export type PayloadContent = 'empty' | 'id-only' | 'full-resource';
export type ChannelKind = 'rest-hook' | 'websocket';
export type SubscriptionStatusCode = 'requested' | 'active' | 'error' | 'off';
export type PayloadMimeType = 'application/fhir+json' | 'application/json';

/** One channel.header line, `Name: value`, split. */
export interface ChannelHeader {
  name: string;
  value: string;
}

/** A valid Subscription, normalised. */
export interface SubscriptionSpec {
  /** Subscription.id, when it has one (a create has none yet). */
  id?: string;
  status: SubscriptionStatusCode;
  /** The topic's canonical URL (without a |version). */
  topic: string;
  filters: FilterCriteria[];
  channel: ChannelKind;
  /** rest-hook: the absolute URL notifications are POSTed to. */
  endpoint?: string;
  headers: ChannelHeader[];
  mimeType: PayloadMimeType;
  content: PayloadContent;
  /** Seconds between heartbeats; none when absent. */
  heartbeatSeconds?: number;
  /** The subscriber's limit on one delivery attempt, in seconds (the server's own limit also applies). */
  timeoutSeconds?: number;
  /** Most triggering resources in one notification Bundle. */
  maxCount?: number;
  /** Subscription.end: when the server turns the subscription off. */
  end?: string;
}

/** Bounds Carnet sets on the numeric extensions (outside them: 422). */
export const LIMITS = {
  /** Heartbeats more often than this would be load, not liveness. */
  minHeartbeatSeconds: 10,
  maxHeartbeatSeconds: 7 * 24 * 3600,
  maxTimeoutSeconds: 120,
  maxCount: 1000,
} as const;

const CONTENTS: readonly PayloadContent[] = ['empty', 'id-only', 'full-resource'];
const STATUSES: readonly SubscriptionStatusCode[] = ['requested', 'active', 'error', 'off'];
const MIME_TYPES: readonly PayloadMimeType[] = ['application/fhir+json', 'application/json'];

/** Headers the delivery sets itself, or that would change the request's framing: a channel.header may not set them. */
const RESERVED_HEADERS = new Set(['host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'expect']);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses a `Name: value` header line; undefined when it is not one (or names a reserved header). */
export function parseHeader(line: string): ChannelHeader | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  const name = line.slice(0, colon).trim();
  const value = line.slice(colon + 1).trim();
  if (!HEADER_NAME.test(name) || RESERVED_HEADERS.has(name.toLowerCase()) || /[\r\n\0]/.test(value)) return undefined;
  return { name, value };
}

function extensions(list: Extension[] | undefined, url: string): Extension[] {
  return (list ?? []).filter((e) => e.url === url);
}

/** The status a new subscription starts in: rest-hook waits for its handshake (the IG), websocket is active once created. */
export function initialStatus(channel: ChannelKind): SubscriptionStatusCode {
  return channel === 'rest-hook' ? 'requested' : 'active';
}

/**
 * Checks a Subscription against the backport profile and Carnet's topics; returns its
 * SubscriptionSpec, or throws a 422 (Unprocessable) listing every problem with its element.
 */
export function validateSubscription(resource: Subscription, topics: TopicRegistry): SubscriptionSpec {
  const issues: Issue[] = [];
  const fail = (diagnostics: string, expression: string, code: Issue['code'] = 'invalid') => issues.push({ code, diagnostics, expression: [expression] });

  if (resource.resourceType !== 'Subscription') fail('the resource is not a Subscription', 'Subscription');

  const status = resource.status as SubscriptionStatusCode | undefined;
  if (!status || !STATUSES.includes(status)) fail(`Subscription.status must be one of ${STATUSES.join(', ')}`, 'Subscription.status');

  let topic: Topic | undefined;
  if (typeof resource.criteria !== 'string' || resource.criteria === '') {
    fail('Subscription.criteria is required: the canonical URL of a SubscriptionTopic', 'Subscription.criteria', 'required');
  } else {
    topic = topics.get(resource.criteria);
    if (!topic) {
      fail(`"${resource.criteria}" is not a topic this server offers (${topics.all().map((t) => t.url).join(', ')})`, 'Subscription.criteria', 'not-supported');
    }
  }

  const filters: FilterCriteria[] = [];
  const criteriaExtensions = (resource as Subscription & { _criteria?: { extension?: Extension[] } })._criteria?.extension;
  extensions(criteriaExtensions, EXTENSIONS.filterCriteria).forEach((ext, i) => {
    const where = `Subscription.criteria.extension[${i}]`;
    if (typeof ext.valueString !== 'string') return fail('a filter criteria extension needs a valueString', where);
    let parsed: FilterCriteria;
    try {
      parsed = parseFilterCriteria(ext.valueString);
    } catch (error) {
      return fail(`filter "${ext.valueString}": ${(error as Error).message}`, where);
    }
    if (topic) {
      for (const c of parsed.criteria) {
        if (!topic.filters.some((f) => f.resource === parsed.resourceType && f.parameter === c.parameter)) {
          const allowed = topic.filters.map((f) => `${f.resource}?${f.parameter}`).join(', ');
          return fail(`filter "${ext.valueString}": the topic ${topic.url} cannot be filtered on ${parsed.resourceType}?${c.parameter} (it can on ${allowed || 'nothing'})`, where, 'not-supported');
        }
      }
    }
    filters.push(parsed);
  });

  const channel = resource.channel;
  let kind: ChannelKind | undefined;
  let endpoint: string | undefined;
  let content: PayloadContent | undefined;
  let mimeType: PayloadMimeType | undefined;
  const headers: ChannelHeader[] = [];
  let heartbeatSeconds: number | undefined;
  let timeoutSeconds: number | undefined;
  let maxCount: number | undefined;
  if (!channel) {
    fail('Subscription.channel is required', 'Subscription.channel', 'required');
  } else {
    const typeExtensions = (channel as typeof channel & { _type?: { extension?: Extension[] } })._type?.extension;
    if (extensions(typeExtensions, EXTENSIONS.channelType).length > 0) {
      fail('custom channel types are not supported: use rest-hook or websocket', 'Subscription.channel.type', 'not-supported');
    } else if (channel.type === 'rest-hook' || channel.type === 'websocket') {
      kind = channel.type;
    } else {
      fail(`channel type "${channel.type ?? ''}" is not supported: use rest-hook or websocket`, 'Subscription.channel.type', 'not-supported');
    }

    if (kind === 'rest-hook') {
      let url: URL | undefined;
      try {
        url = channel.endpoint ? new URL(channel.endpoint) : undefined;
      } catch {
        url = undefined;
      }
      if (!channel.endpoint) fail('a rest-hook subscription needs Subscription.channel.endpoint', 'Subscription.channel.endpoint', 'required');
      else if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) fail('Subscription.channel.endpoint must be an absolute http or https URL', 'Subscription.channel.endpoint');
      else if (url.username || url.password) fail('Subscription.channel.endpoint may not carry credentials: use a channel.header', 'Subscription.channel.endpoint');
      else endpoint = url.href;
    }

    (channel.header ?? []).forEach((line, i) => {
      const header = typeof line === 'string' ? parseHeader(line) : undefined;
      if (header) headers.push(header);
      else fail(`"${String(line).slice(0, 80)}" is not a "Name: value" header Carnet may send (reserved: ${[...RESERVED_HEADERS].join(', ')})`, `Subscription.channel.header[${i}]`);
    });

    if (!channel.payload) {
      fail('Subscription.channel.payload is required (the backport profile): application/fhir+json or application/json', 'Subscription.channel.payload', 'required');
    } else {
      const mime = channel.payload.split(';')[0].trim().toLowerCase();
      if (MIME_TYPES.includes(mime as PayloadMimeType)) mimeType = mime as PayloadMimeType;
      else fail(`payload type "${channel.payload}" is not supported: use application/fhir+json or application/json`, 'Subscription.channel.payload', 'not-supported');
    }
    const payloadExtensions = (channel as typeof channel & { _payload?: { extension?: Extension[] } })._payload?.extension;
    const contentExtensions = extensions(payloadExtensions, EXTENSIONS.payloadContent);
    if (contentExtensions.length !== 1) {
      fail(`Subscription.channel.payload needs exactly one ${EXTENSIONS.payloadContent} extension (empty, id-only or full-resource)`, 'Subscription.channel.payload.extension', 'required');
    } else if (!CONTENTS.includes(contentExtensions[0].valueCode as PayloadContent)) {
      fail(`payload content "${contentExtensions[0].valueCode ?? ''}" is not empty, id-only or full-resource`, 'Subscription.channel.payload.extension');
    } else {
      content = contentExtensions[0].valueCode as PayloadContent;
      if (content === 'full-resource' && endpoint?.startsWith('http:')) {
        fail('full-resource content is not sent over plain http: use an https endpoint, or id-only or empty content', 'Subscription.channel.payload.extension', 'security');
      }
    }

    const integer = (url: string, name: string, field: 'valueUnsignedInt' | 'valuePositiveInt', min: number, max: number): number | undefined => {
      const found = extensions(channel.extension, url);
      if (found.length === 0) return undefined;
      const value = found[0][field];
      if (found.length > 1 || typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        fail(`${name} must be one ${field} from ${min} to ${max}`, `Subscription.channel.extension(${url})`);
        return undefined;
      }
      return value;
    };
    heartbeatSeconds = integer(EXTENSIONS.heartbeatPeriod, 'the heartbeat period', 'valueUnsignedInt', LIMITS.minHeartbeatSeconds, LIMITS.maxHeartbeatSeconds);
    timeoutSeconds = integer(EXTENSIONS.timeout, 'the timeout', 'valueUnsignedInt', 1, LIMITS.maxTimeoutSeconds);
    maxCount = integer(EXTENSIONS.maxCount, 'the max count', 'valuePositiveInt', 1, LIMITS.maxCount);
  }

  if (resource.end !== undefined && Number.isNaN(Date.parse(resource.end))) fail('Subscription.end is not a dateTime', 'Subscription.end');

  if (issues.length > 0 || !topic || !kind || !mimeType || !content || !status) throw Unprocessable.of(issues);
  return {
    ...(resource.id ? { id: resource.id } : {}),
    status,
    topic: topic.url,
    filters,
    channel: kind,
    ...(endpoint ? { endpoint } : {}),
    headers,
    mimeType,
    content,
    ...(heartbeatSeconds !== undefined ? { heartbeatSeconds } : {}),
    ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    ...(maxCount !== undefined ? { maxCount } : {}),
    ...(resource.end ? { end: resource.end } : {}),
  };
}
