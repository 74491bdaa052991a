// fhir/context: the values every interaction receives (the store, the base URL, limits) and
// the transport-neutral request and response that HTTP routes and Bundle entries share.

import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { BlobInfo, Store } from '../store/port.js';
import type { Actor } from '../auth/actor.js';
import type { Policy } from '../policy/index.js';
import type { GroupCommit } from '../audit/group-commit.js';
import type { TopicRegistry } from '../notify/topics.js';
import type { WsHub } from '../notify/websocket.js';

export interface FhirContext {
  store: Store;
  /** Consent decisions (policy/), consulted before every read and write of patient data. */
  policy: Policy;
  /** Record every interaction as an AuditEvent (off only in the benchmark harness). */
  audit: boolean;
  /** Commits the records of reads, grouped across concurrent requests. */
  auditLog: GroupCommit;
  /** Absolute base of the FHIR API, without trailing slash, e.g. http://127.0.0.1:8080/fhir. */
  baseUrl: string;
  defaultPageSize: number;
  maxPageSize: number;
  /** The instant of a write: one value per interaction or transaction. */
  now(): string;
  /** Profile-level rules for transactions (IHE MHD's Provide Document Bundle), wired by app.ts. */
  transactionChecks: TransactionCheck[];
  /** The SubscriptionTopics offered (notify/topics). */
  topics: TopicRegistry;
  /** This process's websocket notification channel (notify/websocket). */
  hub?: WsHub;
  /** The secret keying the hashes of provisional codes (policy/account.ts), the same in every process. */
  accountCodeKey: Buffer;
}

/** One write entry of a transaction once ids are decided and references rewritten. */
export interface TransactionEntry {
  index: number;
  method: Method;
  type: string;
  /** The id the entry writes (assigned for a create). */
  id?: string;
  /** The entry's resource, with references rewritten; a check may complete it (it is written as it is). */
  resource?: Resource;
}

/**
 * Checks a transaction before anything is prepared: throws to reject the whole Bundle (naming the
 * entry), may complete entries' resources, and returns extra writes that follow from the Bundle
 * (a replaced document becoming superseded). Extra writes commit in the same transaction, go
 * through the same policy checks, and get no entry of their own in the response.
 */
export type TransactionCheck = (ctx: FhirContext, req: FhirRequest, bundle: Bundle, entries: TransactionEntry[]) => Promise<FhirRequest[]>;

/** Where a request points, once its path is parsed (from a URL or a Bundle entry's request.url). */
export type Target =
  | { kind: 'system' }
  | { kind: 'metadata' }
  | { kind: 'system-history' }
  | { kind: 'type'; type: string }
  | { kind: 'type-search'; type: string }
  | { kind: 'type-history'; type: string }
  | { kind: 'type-operation'; type: string; operation: string }
  | { kind: 'instance'; type: string; id: string }
  | { kind: 'instance-history'; type: string; id: string }
  | { kind: 'version'; type: string; id: string; versionId: string }
  | { kind: 'instance-operation'; type: string; id: string; operation: string };

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request body: parsed JSON, or raw bytes with their media type (Binary content). */
export type Body =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown; mediaType: string }
  | { kind: 'raw'; data: Buffer; mediaType: string }
  /** Binary content already streamed into the blob store as it arrived (fhir/binary). */
  | { kind: 'content'; blob: BlobInfo; mediaType: string }
  /** application/x-www-form-urlencoded, as POST [type]/_search sends its parameters. */
  | { kind: 'form'; params: [string, string][] };

export interface Preferences {
  /** Prefer: return=... */
  return?: 'minimal' | 'representation' | 'OperationOutcome';
  /** Prefer: handling=lenient */
  lenient: boolean;
}

export interface FhirRequest {
  /** Who is calling: set by the auth hook from the verified bearer token (absent on public routes). */
  actor?: Actor;
  method: Method;
  target: Target;
  /** Query parameters in order, repeated names kept. */
  query: [string, string][];
  body: Body;
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifNoneExist?: string;
  prefer: Preferences;
  /** Writes an error line to the request's log (no health data). */
  log?: (message: string) => void;
}

export interface FhirResponse {
  status: number;
  /** The interaction's AuditEvent was already written with its write. */
  audited?: boolean;
  /**
   * Answered as if nothing were there, but refused: the caller may not see what it named (a
   * delete of a hidden resource). Recorded as denied, in that patient's access log.
   */
  denied?: { resources: string[]; patients: string[]; confidential?: boolean };
  headers: Record<string, string>;
  resource?: Resource;
  /** Raw bytes with their media type, for Binary content served as itself. */
  raw?: { mediaType: string; data: Buffer };
  /**
   * Another representation of `resource` the client may ask for by media type (`_format` or
   * `Accept`, fhir/media negotiate), rendered only when asked: the PDF of a patient summary.
   */
  rendition?: { mediaType: string; render: () => Promise<Buffer> };
}
