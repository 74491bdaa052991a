// mhd: IHE MHD on top of fhir/ and store/ (https://profiles.ihe.net/ITI/MHD/). This file is the
// Document Recipient's ITI-65 Provide Document Bundle rules, run as a transaction check: the
// Bundle is an ordinary FHIR transaction, and these rules reject it whole before anything is
// written, or complete it (attachment size and hash, Binary.securityContext, superseding).

import crypto from 'node:crypto';
import type { Attachment, Binary, Bundle, DocumentReference, List, Reference, Resource } from '@medplum/fhirtypes';
import type { FhirContext, FhirRequest, TransactionCheck, TransactionEntry } from '../fhir/context.js';
import { isSubmissionSet, MHD_LIST_TYPES } from '../audit/ihe.js';
import { pointerOf } from '../fhir/binary.js';
import { Unprocessable } from '../base/outcome.js';
import { validateProfile } from '../fhir/profiles.js';
import { parseReference } from '../search/extract.js';
import type { SearchPlan } from '../search/types.js';

const PROVIDE_BUNDLE_PROFILE = /\/(IHE\.MHD\.(UnContained\.)?(Minimal|Comprehensive)\.ProvideBundle|pdsm-comprehensive-provide-document-bundle)$/;
const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/';
const PDSM = 'https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/';

/** The metadata option a Bundle claims, and the profiles its SubmissionSet and documents must meet. */
interface MetadataOption {
  submissionSet: string;
  document: string;
}
const OPTIONS: [RegExp, MetadataOption][] = [
  [/pdsm-comprehensive-provide-document-bundle$/, { submissionSet: `${PDSM}pdsm-submissionset-comprehensive`, document: `${PDSM}pdsm-comprehensive-document-reference` }],
  [/IHE\.MHD\.UnContained\.Comprehensive\.ProvideBundle$/, { submissionSet: `${MHD}IHE.MHD.UnContained.Comprehensive.SubmissionSet`, document: `${MHD}IHE.MHD.UnContained.Comprehensive.DocumentReference` }],
  [/IHE\.MHD\.Comprehensive\.ProvideBundle$/, { submissionSet: `${MHD}IHE.MHD.Comprehensive.SubmissionSet`, document: `${MHD}IHE.MHD.Comprehensive.DocumentReference` }],
];
/** Without a claim, the Minimal option: the least a Document Recipient accepts. */
const MINIMAL: MetadataOption = { submissionSet: `${MHD}IHE.MHD.Minimal.SubmissionSet`, document: `${MHD}IHE.MHD.Minimal.DocumentReference` };

function optionOf(bundle: Bundle): MetadataOption {
  for (const [pattern, option] of OPTIONS) if (bundle.meta?.profile?.some((p) => pattern.test(p))) return option;
  return MINIMAL;
}

/**
 * The SubmissionSet and each document meet the profiles of the Bundle's metadata option, whether
 * or not they claim them (a resource's own meta.profile claims are checked on write anyway).
 */
function checkProfile(entry: TransactionEntry, url: string): void {
  const resource = entry.resource as Resource;
  if (resource.meta?.profile?.includes(url)) return;
  const errors = validateProfile(resource, url).filter((i) => i.severity !== 'warning');
  if (errors.length === 0) return;
  const where = `Bundle.entry[${entry.index}]`;
  throw Unprocessable.of(
    errors.map((i) => ({
      ...i,
      diagnostics: `${where}: ${i.diagnostics} (IHE MHD ITI-65 rule profile)`,
      ...(i.expression ? { expression: i.expression.map((e) => `${where}.resource.${e.replace(/^[A-Z][A-Za-z]+\./, '')}`) } : {}),
    })),
  );
}
/** The id of a relative literal reference to a `type` of this server ("Patient/42"), else undefined. */
function localId(reference: string | undefined, type: string): string | undefined {
  const parsed = reference !== undefined ? parseReference(reference) : null;
  return parsed && parsed[0] === type && parsed[2] === null && parsed[1] !== null ? parsed[1] : undefined;
}

/** A failed ITI-65 rule: 422 naming the entry, the element and the rule. */
function broken(entry: TransactionEntry, rule: string, message: string, element?: string): Unprocessable {
  const where = `Bundle.entry[${entry.index}]`;
  return new Unprocessable(`${where}: ${message} (IHE MHD ITI-65 rule ${rule})`, element ? `${where}.resource.${element}` : where, 'business-rule');
}


/** Whether a transaction is an ITI-65 Provide Document Bundle: it claims the profile or carries a SubmissionSet. */
export function isProvideBundle(bundle: Bundle, entries: TransactionEntry[]): boolean {
  return !!bundle.meta?.profile?.some((p) => PROVIDE_BUNDLE_PROFILE.test(p)) || entries.some((e) => isSubmissionSet(e.resource));
}

const refOf = (entry: TransactionEntry) => `${entry.type}/${entry.id ?? ''}`;

/** The Binary bytes an attachment points at inside the Bundle, or inline. */
function bytesOf(attachment: Attachment, inBundle: Map<string, TransactionEntry>): { bytes: Buffer; binary?: TransactionEntry } | undefined {
  if (attachment.data !== undefined) return { bytes: Buffer.from(attachment.data, 'base64') };
  const target = attachment.url !== undefined ? inBundle.get(attachment.url) : undefined;
  if (target?.resource?.resourceType !== 'Binary') return undefined;
  return { bytes: Buffer.from((target.resource as Binary).data ?? '', 'base64'), binary: target };
}

async function knownPatient(ctx: FhirContext, entry: TransactionEntry, subject: Reference | undefined, inBundle: Map<string, TransactionEntry>, element: string): Promise<string> {
  const reference = subject?.reference;
  if (reference === undefined) throw broken(entry, 'subject-required', 'the document has no subject: Carnet files every document in a patient\'s record', element);
  const id = localId(reference, 'Patient');
  if (id === undefined) throw broken(entry, 'subject-patient', `subject "${reference}" is not a reference to a Patient of this server`, element);
  if (inBundle.has(reference)) {
    throw broken(entry, 'subject-known', `subject ${reference} is created by this Bundle: the patient must already be known to Carnet (by id, or by INS with "Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|<INS>")`, element);
  }
  const read = await ctx.store.read('Patient', id);
  if (read.kind !== 'found') throw broken(entry, 'subject-known', `subject ${reference} is not a patient known to Carnet`, element);
  // Whether the account takes documents (not once objected, closed or archived) is the policy's
  // to decide, for every write path alike (policy/write.ts): each document's create is refused.
  return reference;
}

/** What is known of an attachment's bytes: in the Bundle (or inline), or already on this server. */
async function contentOf(ctx: FhirContext, attachment: Attachment, inBundle: Map<string, TransactionEntry>): Promise<{ size: number; sha1: string; binary?: TransactionEntry } | undefined> {
  const local = bytesOf(attachment, inBundle);
  if (local) return { size: local.bytes.length, sha1: crypto.createHash('sha1').update(local.bytes).digest('base64'), ...(local.binary ? { binary: local.binary } : {}) };
  const id = localId(attachment.url, 'Binary');
  if (id === undefined) return undefined;
  const read = await ctx.store.read('Binary', id);
  if (read.kind !== 'found') return undefined;
  const binary = read.version.resource as Binary;
  const stored = pointerOf(binary);
  if (stored) return { size: stored.size, sha1: stored.sha1 };
  const bytes = Buffer.from(binary.data ?? '', 'base64');
  return { size: bytes.length, sha1: crypto.createHash('sha1').update(bytes).digest('base64') };
}

async function checkAttachment(ctx: FhirContext, entry: TransactionEntry, attachment: Attachment, inBundle: Map<string, TransactionEntry>, element: string): Promise<TransactionEntry | undefined> {
  const content = await contentOf(ctx, attachment, inBundle);
  if (!content) {
    throw broken(entry, 'attachment-resolvable', `attachment.url "${attachment.url ?? ''}" points at no Binary of this Bundle or server: Carnet keeps the document's bytes`, `${element}.url`);
  }
  if (attachment.size !== undefined && attachment.size !== content.size) {
    throw broken(entry, 'attachment-size', `attachment.size is ${attachment.size} but the document has ${content.size} bytes`, `${element}.size`);
  }
  if (attachment.hash !== undefined && attachment.hash !== content.sha1) {
    throw broken(entry, 'attachment-hash', `attachment.hash ${attachment.hash} is not the SHA-1 of the document's bytes (${content.sha1})`, `${element}.hash`);
  }
  // The Document Recipient completes what the source left out, so consumers can always check.
  attachment.size ??= content.size;
  attachment.hash ??= content.sha1;
  return content.binary;
}

/**
 * A document's uniqueId (masterIdentifier) names it for ever (XDS: XDSDuplicateUniqueIdInRegistry):
 * a second document with the same one, in the Bundle or already provided, is refused. An
 * unattended source that retries a push it believes lost learns that it arrived.
 */
async function checkUniqueIds(ctx: FhirContext, documents: TransactionEntry[]): Promise<void> {
  const seen = new Map<string, TransactionEntry>();
  for (const entry of documents) {
    const id = (entry.resource as DocumentReference).masterIdentifier;
    if (id?.value === undefined) continue;
    const key = `${id.system ?? ''}|${id.value}`;
    const first = seen.get(key);
    if (first) throw broken(entry, 'unique-id', `masterIdentifier ${id.value} is also the uniqueId of Bundle.entry[${first.index}]`, 'masterIdentifier');
    seen.set(key, entry);
    const plan: SearchPlan = { types: ['DocumentReference'], where: [{ kind: 'token', param: 'identifier', values: [{ system: id.system ?? null, code: id.value }] }], sort: [] };
    // Existence only, whoever may read it: a uniqueId is unique in the whole national record.
    const { matches } = await ctx.store.search(plan, { count: 1 });
    if (matches.length > 0) throw broken(entry, 'unique-id', `a document with uniqueId ${id.value} was already provided`, 'masterIdentifier');
  }
}

/** The replaced, appended or transformed documents must exist, for the same patient; a replaced one must be current. */
async function checkRelations(ctx: FhirContext, req: FhirRequest, entry: TransactionEntry, document: DocumentReference, patient: string, writtenHere: Set<string>): Promise<FhirRequest[]> {
  const followers: FhirRequest[] = [];
  for (const [i, relation] of (document.relatesTo ?? []).entries()) {
    const element = `relatesTo[${i}].target`;
    const reference = relation.target?.reference ?? '';
    const id = localId(reference, 'DocumentReference');
    if (id === undefined) throw broken(entry, 'relates-to-known', `relatesTo target "${reference}" is not a DocumentReference of this server`, element);
    const read = await ctx.store.read('DocumentReference', id);
    if (read.kind !== 'found') throw broken(entry, 'relates-to-known', `relatesTo target ${reference} does not exist`, element);
    const target = read.version.resource as DocumentReference;
    if (target.subject?.reference !== patient) throw broken(entry, 'relates-to-patient', `relatesTo target ${reference} is another patient's document`, element);
    if (relation.code !== 'replaces') continue;
    if (target.status !== 'current' && !writtenHere.has(reference)) throw broken(entry, 'replace-current', `${reference} is ${target.status}: only a current document can be replaced`, element);
    // MHD: the replaced document becomes superseded in the same transaction, unless the Bundle
    // already says so itself (the IHE and ANS examples carry that PATCH).
    if (!writtenHere.has(reference)) followers.push(supersede(req, id, read.version.versionId));
  }
  return followers;
}

/** The PATCH that marks a replaced document superseded, made as the pushing actor (so the policy judges it). */
function supersede(req: FhirRequest, id: string, versionId: number): FhirRequest {
  return {
    ...(req.actor ? { actor: req.actor } : {}),
    ...(req.log ? { log: req.log } : {}),
    method: 'PATCH',
    target: { kind: 'instance', type: 'DocumentReference', id },
    query: [],
    ifMatch: `W/"${versionId}"`,
    prefer: req.prefer,
    body: {
      kind: 'json',
      mediaType: 'application/fhir+json',
      value: {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'operation',
            part: [
              { name: 'type', valueCode: 'replace' },
              { name: 'path', valueString: 'DocumentReference.status' },
              { name: 'value', valueCode: 'superseded' },
            ],
          },
        ],
      },
    },
  };
}

export const provideDocumentBundle: TransactionCheck = async (ctx, req, bundle, entries) => {
  if (!isProvideBundle(bundle, entries)) return [];
  const inBundle = new Map(entries.filter((e) => e.id !== undefined).map((e) => [refOf(e), e]));
  const writtenHere = new Set(entries.filter((e) => e.type === 'DocumentReference').map(refOf));
  const submissionSets = entries.filter((e) => isSubmissionSet(e.resource));
  const first = entries[0] ?? { index: 0, method: 'POST', type: 'Bundle' };
  if (submissionSets.length !== 1) {
    throw broken(submissionSets[1] ?? first, 'one-submissionset', `a Provide Document Bundle carries exactly one SubmissionSet List (code ${MHD_LIST_TYPES}|submissionset), this one has ${submissionSets.length}`);
  }
  const [setEntry] = submissionSets;
  const submissionSet = setEntry.resource as List;
  const listed = new Set((submissionSet.entry ?? []).map((e) => e.item?.reference));
  const documents = entries.filter((e) => e.resource?.resourceType === 'DocumentReference');
  if (documents.length === 0) throw broken(setEntry, 'documents', 'the Bundle carries no DocumentReference');
  const option = optionOf(bundle);
  checkProfile(setEntry, option.submissionSet);
  for (const entry of documents) checkProfile(entry, option.document);
  const followers: FhirRequest[] = [];
  let patient: string | undefined;
  for (const entry of documents) {
    const document = entry.resource as DocumentReference;
    if (entry.method !== 'POST' && entry.method !== 'PUT') throw broken(entry, 'document-write', 'a DocumentReference is provided with POST (or PUT)');
    if (!listed.has(refOf(entry))) throw broken(entry, 'submissionset-entry', `the SubmissionSet (Bundle.entry[${setEntry.index}]) does not list this DocumentReference`);
    const subject = await knownPatient(ctx, entry, document.subject, inBundle, 'subject');
    if (patient !== undefined && subject !== patient) throw broken(entry, 'same-patient', `every document of a Bundle is for one patient: ${subject} is not ${patient}`, 'subject');
    patient = subject;
    for (const [i, content] of (document.content ?? []).entries()) {
      const binary = await checkAttachment(ctx, entry, content.attachment, inBundle, `content[${i}].attachment`);
      if (binary?.resource) {
        // The bytes are as sensitive as the document: the consent engine follows securityContext.
        const context = (binary.resource as Binary).securityContext?.reference;
        if (context !== undefined && context !== refOf(entry)) throw broken(binary, 'binary-context', `Binary.securityContext is ${context}, not the DocumentReference that points at it (${refOf(entry)})`, 'securityContext');
        (binary.resource as Binary).securityContext = { reference: refOf(entry) };
      }
    }
    followers.push(...(await checkRelations(ctx, req, entry, document, subject, writtenHere)));
  }
  await checkUniqueIds(ctx, documents);
  if (submissionSet.subject !== undefined) {
    const subject = await knownPatient(ctx, setEntry, submissionSet.subject, inBundle, 'subject');
    if (subject !== patient) throw broken(setEntry, 'same-patient', `the SubmissionSet's subject ${subject} is not the documents' patient ${patient ?? ''}`, 'subject');
  }
  return followers;
};
