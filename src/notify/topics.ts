// notify/topics: the SubscriptionTopics Carnet offers (topic-based subscriptions, HL7 Subscriptions
// R5 Backport IG), read from profiles/subscription-topics/*.json, and the pure tests a change is put
// to: does this create, update or delete trigger the topic (`matches`), and does the resource pass
// a subscription's filter criteria (`filterMatches`).
//
// The files are R5 SubscriptionTopic JSON. R4 has no SubscriptionTopic resource: Carnet advertises
// the canonical URLs in its CapabilityStatement (`capabilityExtensions`), as the IG allows, and
// may serve the JSON as it is. Criteria (a trigger's queryCriteria, a subscription's filters) are
// search-style: `param[:modifier]=value[,value]`, several joined by `&` (all must hold), on token
// and reference parameters only, evaluated on the resource's index entries (search/extract).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Resource } from '@medplum/fhirtypes';
import { indexEntries, parseReference, type IndexEntry } from '../search/extract.js';
import { findParam } from '../search/params.js';

/** The folder of the topic files, resolved from this module so it works from src/notify and dist/notify. */
export const TOPICS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../profiles/subscription-topics');

/** Where Carnet's topic canonical URLs live: `<TOPIC_BASE><id>`. */
export const TOPIC_BASE = 'https://carnet.example.org/fhir/SubscriptionTopic/';

/** The extension of CapabilityStatement.rest.resource (Subscription) that names a supported topic. */
export const TOPIC_CANONICAL_EXTENSION = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical';

export type Interaction = 'create' | 'update' | 'delete';

/** The parameter types a criterion may use: the ones evaluated here. */
const CRITERIA_TYPES = new Set(['token', 'reference']);

/** One `param[:modifier]=values` test. */
export interface Criterion {
  /** The search parameter code. */
  parameter: string;
  /** `not` (tokens only: no value matches), or none. */
  modifier?: 'not';
  /** Alternatives (a comma-separated list): one must match. */
  values: string[];
}

/** A subscription's filter (`DocumentReference?patient=Patient/123`): the resource type and its tests (all must hold). */
export interface FilterCriteria {
  resourceType: string;
  criteria: Criterion[];
}

/** R5 SubscriptionTopic.resourceTrigger.queryCriteria, parsed. */
export interface QueryCriteria {
  previous?: Criterion[];
  current?: Criterion[];
  resultForCreate: 'test-passes' | 'test-fails';
  resultForDelete: 'test-passes' | 'test-fails';
  requireBoth: boolean;
}

export interface ResourceTrigger {
  description: string;
  /** The resource type (R5 gives a StructureDefinition URL or a type name; this is the name). */
  resource: string;
  interactions: Interaction[];
  queryCriteria?: QueryCriteria;
}

export interface TopicFilter {
  resource: string;
  parameter: string;
  description: string;
}

export interface Topic {
  id: string;
  /** The canonical URL a Subscription's criteria names. */
  url: string;
  title: string;
  description: string;
  triggers: ResourceTrigger[];
  filters: TopicFilter[];
  /** The file's JSON (an R5 SubscriptionTopic), for serving as it is. */
  resource: Record<string, unknown>;
}

/** A change to put to a topic: `before` is the previous version (update, delete), `after` the new one (create, update). */
export interface Change {
  before?: Resource;
  after?: Resource;
  interaction: Interaction;
}

const INTERACTIONS: readonly Interaction[] = ['create', 'update', 'delete'];

/** The resource type a trigger or filter names: `Encounter` or `http://hl7.org/fhir/StructureDefinition/Encounter`. */
function typeName(resource: string): string {
  return resource.slice(resource.lastIndexOf('/') + 1);
}

/**
 * Parses `param[:modifier]=value[,value]&...` on `resourceType`: only token and reference
 * parameters that type has, `:not` on tokens only. Throws an Error saying what is wrong.
 */
export function parseCriteria(resourceType: string, text: string): Criterion[] {
  if (text.trim() === '') throw new Error('the criteria are empty');
  return text.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`"${pair}" is not name=value`);
    const [parameter, modifier, ...rest] = decodeURIComponent(pair.slice(0, eq)).split(':');
    const raw = decodeURIComponent(pair.slice(eq + 1));
    const values = raw.split(',').filter((v) => v !== '');
    if (values.length === 0) throw new Error(`"${pair}" has no value`);
    const param = findParam(resourceType, parameter);
    if (!param) throw new Error(`${resourceType} has no search parameter "${parameter}"`);
    if (!CRITERIA_TYPES.has(param.type)) throw new Error(`"${parameter}" is a ${param.type} parameter; only token and reference parameters can be used`);
    if (rest.length > 0 || (modifier !== undefined && (modifier !== 'not' || param.type !== 'token'))) {
      throw new Error(`the modifier of "${pair.slice(0, eq)}" is not supported (only :not, on token parameters)`);
    }
    return { parameter, values, ...(modifier === 'not' ? { modifier: 'not' as const } : {}) };
  });
}

/** Parses a filter criteria string: `Type?param=value&...`. Throws an Error saying what is wrong. */
export function parseFilterCriteria(text: string): FilterCriteria {
  const q = text.indexOf('?');
  if (q <= 0) throw new Error(`"${text}" is not of the form ResourceType?param=value`);
  const resourceType = text.slice(0, q);
  return { resourceType, criteria: parseCriteria(resourceType, text.slice(q + 1)) };
}

function tokenMatches(entry: IndexEntry, value: string): boolean {
  if (entry.kind !== 'token') return false;
  const bar = value.indexOf('|');
  if (bar < 0) return entry.code === value;
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (system === '') return entry.system === null && entry.code === code;
  return entry.system === system && (code === '' || entry.code === code);
}

function referenceMatches(entry: IndexEntry, value: string): boolean {
  if (entry.kind !== 'reference') return false;
  if (!value.includes('/')) return entry.targetId === value;
  const parsed = parseReference(value);
  if (!parsed) return false;
  const [type, id, url] = parsed;
  if (type !== null && id !== null) return entry.targetType === type && entry.targetId === id;
  return url !== null && entry.url === url;
}

function criterionHolds(criterion: Criterion, entries: readonly IndexEntry[]): boolean {
  const own = entries.filter((e) => e.param === criterion.parameter);
  const hit = own.some((e) => criterion.values.some((v) => (e.kind === 'reference' ? referenceMatches(e, v) : tokenMatches(e, v))));
  return criterion.modifier === 'not' ? !hit : hit;
}

/** The index entries of a resource, computed once per resource object (a change is put to every topic and filter). */
const entriesCache = new WeakMap<Resource, IndexEntry[]>();
function entriesOf(resource: Resource): IndexEntry[] {
  let entries = entriesCache.get(resource);
  if (!entries) entriesCache.set(resource, (entries = indexEntries(resource)));
  return entries;
}

/** Whether every criterion holds for the resource (its index entries are computed once). */
export function criteriaHold(criteria: readonly Criterion[], resource: Resource, entries: readonly IndexEntry[] = entriesOf(resource)): boolean {
  return criteria.every((c) => criterionHolds(c, entries));
}

/**
 * Whether a resource passes a subscription's filters: every filter on its resource type must hold
 * (logical AND, as the IG says); filters on other types do not apply to it.
 */
export function filterMatches(filters: readonly FilterCriteria[], resource: Resource): boolean {
  const own = filters.filter((f) => f.resourceType === resource.resourceType);
  if (own.length === 0) return true;
  const entries = entriesOf(resource);
  return own.every((f) => criteriaHold(f.criteria, resource, entries));
}

/** R5 semantics: the previous test on `before` (resultForCreate on a create), the current on `after` (resultForDelete on a delete). */
function queryCriteriaPass(q: QueryCriteria, change: Change): boolean {
  const previous =
    q.previous === undefined ? undefined : change.interaction === 'create' || !change.before ? q.resultForCreate === 'test-passes' : criteriaHold(q.previous, change.before);
  const current =
    q.current === undefined ? undefined : change.interaction === 'delete' || !change.after ? q.resultForDelete === 'test-passes' : criteriaHold(q.current, change.after);
  const results = [previous, current].filter((r): r is boolean => r !== undefined);
  if (results.length === 0) return true;
  return q.requireBoth ? results.every(Boolean) : results.some(Boolean);
}

/** The resource a change is about: the new version, or the deleted one. */
export function focusOf(change: Change): Resource | undefined {
  return change.after ?? change.before;
}

/** Whether a change triggers the topic: one of its triggers is on this resource type and interaction, and its criteria pass. */
export function matches(topic: Topic, change: Change): boolean {
  const focus = focusOf(change);
  if (!focus) return false;
  return topic.triggers.some((t) => t.resource === focus.resourceType && t.interactions.includes(change.interaction) && (!t.queryCriteria || queryCriteriaPass(t.queryCriteria, change)));
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`${what} is missing`);
  return value;
}

function outcome(value: unknown, what: string): 'test-passes' | 'test-fails' {
  if (value === undefined) return 'test-fails';
  if (value !== 'test-passes' && value !== 'test-fails') throw new Error(`${what} must be test-passes or test-fails`);
  return value;
}

/** Reads one R5 SubscriptionTopic JSON into a Topic; throws an Error naming what is wrong. */
export function topicFrom(json: Record<string, unknown>): Topic {
  if (json.resourceType !== 'SubscriptionTopic') throw new Error('resourceType is not SubscriptionTopic');
  const url = text(json.url, 'url');
  const triggers = ((json.resourceTrigger as Record<string, unknown>[] | undefined) ?? []).map((t, i): ResourceTrigger => {
    const where = `resourceTrigger[${i}]`;
    const resource = typeName(text(t.resource, `${where}.resource`));
    const interactions = (t.supportedInteraction as unknown[] | undefined) ?? INTERACTIONS;
    for (const interaction of interactions) {
      if (!INTERACTIONS.includes(interaction as Interaction)) throw new Error(`${where}.supportedInteraction "${String(interaction)}" is not create, update or delete`);
    }
    const q = t.queryCriteria as Record<string, unknown> | undefined;
    const queryCriteria: QueryCriteria | undefined = q && {
      ...(q.previous !== undefined ? { previous: parseCriteria(resource, text(q.previous, `${where}.queryCriteria.previous`)) } : {}),
      ...(q.current !== undefined ? { current: parseCriteria(resource, text(q.current, `${where}.queryCriteria.current`)) } : {}),
      resultForCreate: outcome(q.resultForCreate, `${where}.queryCriteria.resultForCreate`),
      resultForDelete: outcome(q.resultForDelete, `${where}.queryCriteria.resultForDelete`),
      requireBoth: q.requireBoth === true,
    };
    return { description: typeof t.description === 'string' ? t.description : '', resource, interactions: interactions as Interaction[], ...(queryCriteria ? { queryCriteria } : {}) };
  });
  if (triggers.length === 0) throw new Error('the topic has no resourceTrigger');
  const filters = ((json.canFilterBy as Record<string, unknown>[] | undefined) ?? []).map((f, i): TopicFilter => {
    const resource = typeName(text(f.resource, `canFilterBy[${i}].resource`));
    const parameter = text(f.filterParameter, `canFilterBy[${i}].filterParameter`);
    const param = findParam(resource, parameter);
    if (!param || !CRITERIA_TYPES.has(param.type)) throw new Error(`canFilterBy[${i}]: ${resource} has no token or reference search parameter "${parameter}"`);
    return { resource, parameter, description: typeof f.description === 'string' ? f.description : '' };
  });
  return {
    id: text(json.id, 'id'),
    url,
    title: typeof json.title === 'string' ? json.title : '',
    description: typeof json.description === 'string' ? json.description : '',
    triggers,
    filters,
    resource: json,
  };
}

/** The topics Carnet offers, by canonical URL. */
export class TopicRegistry {
  private readonly byUrl: Map<string, Topic>;
  constructor(topics: readonly Topic[]) {
    this.byUrl = new Map(topics.map((t) => [t.url, t]));
  }
  /** The topic a canonical names (a `|version` suffix is ignored), or undefined. */
  get(canonical: string): Topic | undefined {
    const bar = canonical.indexOf('|');
    return this.byUrl.get(bar >= 0 ? canonical.slice(0, bar) : canonical);
  }
  all(): Topic[] {
    return [...this.byUrl.values()];
  }
  /** The topics a change triggers. */
  triggered(change: Change): Topic[] {
    return this.all().filter((t) => matches(t, change));
  }
}

/** Reads every `*.json` of `dir` (name order); a broken file throws naming it, so the server does not start. */
export function loadTopics(dir: string = TOPICS_DIR): TopicRegistry {
  const topics: Topic[] = [];
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    const file = path.join(dir, name);
    try {
      topics.push(topicFrom(JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>));
    } catch (error) {
      throw new Error(`subscription topics: ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return new TopicRegistry(topics);
}

/** The CapabilityStatement.rest.resource (Subscription) extensions that advertise the topics. */
export function capabilityExtensions(registry: TopicRegistry): { url: string; valueCanonical: string }[] {
  return registry.all().map((t) => ({ url: TOPIC_CANONICAL_EXTENSION, valueCanonical: t.url }));
}
