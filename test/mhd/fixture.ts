// Fixtures for the IHE MHD tests: the official IHE and ANS examples (test/fixtures/data), and the
// server state they assume (the patient, the documents they append to or replace).
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Bundle, BundleEntry, DocumentReference, List, Patient, Resource } from '@medplum/fhirtypes';
import { fhir, FIXTURE_DATA } from '../helpers.js';

export const IHE = path.join(FIXTURE_DATA, 'mhd');
export const PDSM = path.join(FIXTURE_DATA, 'fr/pdsm');
export const PDSM4DMP = path.join(FIXTURE_DATA, 'fr/pdsm4dmp/examples');
export const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
/** The INS the ANS PDSm-for-DMP examples use in their conditional references. */
export const ANS_INS = '123456789012345';

export function load<T = Resource>(...parts: string[]): T {
  return JSON.parse(fs.readFileSync(path.join(...parts), 'utf8')) as T;
}

export const iheBundle = (name: string) => load<Bundle>(IHE, `Bundle-${name}.json`);

async function put(app: FastifyInstance, resource: Resource, headers: Record<string, string> = {}): Promise<void> {
  const res = await fhir(app, 'PUT', `${resource.resourceType}/${resource.id}`, resource, headers);
  if (res.statusCode >= 300) throw new Error(`seeding ${resource.resourceType}/${resource.id}: ${res.statusCode} ${res.body}`);
}

/**
 * What the examples assume exists on the Document Recipient. The documents they replace are
 * published in their state after the replacement (status superseded) and some without subject:
 * they are seeded as they were before it (current, for the examples' patient).
 */
/**
 * The draft PDSm-for-DMP examples and the PDSm replace branch's example leave out
 * DocumentReference.custodian, which PDSm 3.1.1 requires (1..1): Carnet refuses them as they
 * are. This gives a copy the custodian, naming the PDSm example organisation.
 */
export function withCustodian<T extends Resource>(resource: T): T {
  const copy = structuredClone(resource);
  const documents = copy.resourceType === 'Bundle' ? ((copy as Bundle).entry ?? []).map((e) => e.resource) : [copy];
  for (const document of documents) if (document?.resourceType === 'DocumentReference') document.custodian ??= { reference: 'Organization/org-example' };
  return copy;
}

export async function seedExamples(app: FastifyInstance, headers: Record<string, string> = {}): Promise<{ ansPatient: string }> {
  await put(app, load<Patient>(IHE, 'Patient-ex-patient.json'), headers);
  await put(app, load(IHE, 'Practitioner-ex-practitioner.json'), headers);
  await put(app, load(IHE, 'Organization-ex-organization.json'), headers);
  await put(app, load<DocumentReference>(IHE, 'DocumentReference-ex-DocumentReferenceComprehensive.json'), headers);
  await put(app, { ...load<DocumentReference>(IHE, 'DocumentReference-ex-documentreference.json'), subject: { reference: 'Patient/ex-patient' } }, headers);
  await put(app, load<Patient>(PDSM, 'examples/Patient-fr-patient-123.json'), headers);
  await put(app, load(PDSM, 'examples/Organization-org-example.json'), headers);
  await put(app, withCustodian({ ...load<DocumentReference>(PDSM, 'examples-branch-add-exemples-iti65/DocumentReference-doc-old.json'), status: 'current' }), headers);
  const ansPatient: Patient = { resourceType: 'Patient', id: 'ans-ins-patient', identifier: [{ system: INS_SYSTEM, value: ANS_INS }], name: [{ family: 'Test', given: ['Ans'] }] };
  await put(app, ansPatient, headers);
  await put(app, withCustodian({ ...load<DocumentReference>(PDSM4DMP, 'DocumentReference-doc-x-id.json'), status: 'current', subject: { reference: 'Patient/ans-ins-patient' } }), headers);
  return { ansPatient: 'Patient/ans-ins-patient' };
}

export const MHD_COMPREHENSIVE_BUNDLE = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle';
const FULL_URL = (n: number) => `urn:uuid:00000000-0000-4000-8000-00000000000${n}`;
/** The fullUrl of the Binary in provideBundle(): attachments point at it. */
export const BINARY_FULL_URL = FULL_URL(3);

let uniqueIds = 0;
/** A fresh document or SubmissionSet uniqueId (an OID under a test arc). */
export const uniqueId = () => `urn:oid:1.2.250.1.999.${process.pid}.${Date.now()}.${++uniqueIds}`;
const UNIQUE_ID_TYPE = { coding: [{ system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/IHE.MHD.MHDIdentifierType', code: 'uniqueId' }] };

/**
 * A Provide Document Bundle (ITI-65) with one SubmissionSet, one DocumentReference and its Binary,
 * meeting the MHD Comprehensive metadata option: entry 0 the SubmissionSet, 1 the document (its
 * attachment url set to the Binary, `document` overriding the defaults), 2 the Binary.
 */
export function provideBundle(subject: string, document: Omit<DocumentReference, 'subject'>, bytes: Buffer, contentType = 'application/pdf'): Bundle & { entry: BundleEntry[] } {
  const submissionSet: List = {
    resourceType: 'List',
    extension: [
      { url: 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType', valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '225728007' }] } },
      { url: 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId', valueIdentifier: { value: 'urn:oid:1.2.250.1.999.1' } },
    ],
    identifier: [{ use: 'usual', system: 'urn:ietf:rfc:3986', type: UNIQUE_ID_TYPE, value: uniqueId() }],
    status: 'current',
    mode: 'working',
    code: { coding: [{ system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes', code: 'submissionset' }] },
    subject: { reference: subject },
    date: '2026-11-27T10:00:00+01:00',
    entry: [{ item: { reference: FULL_URL(2) } }],
  };
  const content = document.content.map((c) => ({
    format: { system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode', code: 'urn:ihe:iti:xds-sd:pdf:2008' },
    ...c,
    attachment: { url: BINARY_FULL_URL, language: 'fr-FR', creation: '2026-11-27T08:30:00+01:00', ...c.attachment },
  }));
  const full: DocumentReference = {
    masterIdentifier: { system: 'urn:ietf:rfc:3986', type: UNIQUE_ID_TYPE, value: uniqueId() },
    type: { coding: [{ system: 'http://loinc.org', code: '11488-4', display: 'Consultation note' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '11488-4' }] }],
    securityLabel: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }] }],
    date: '2026-11-27T09:00:00+01:00',
    context: {
      sourcePatientInfo: { reference: subject },
      facilityType: { coding: [{ system: 'http://snomed.info/sct', code: '82242000' }] },
      practiceSetting: { coding: [{ system: 'http://snomed.info/sct', code: '408467006' }] },
    },
    ...document,
    content,
    subject: { reference: subject },
  };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    meta: { profile: [MHD_COMPREHENSIVE_BUNDLE] },
    entry: [
      { fullUrl: FULL_URL(1), request: { method: 'POST', url: 'List' }, resource: submissionSet },
      { fullUrl: FULL_URL(2), request: { method: 'POST', url: 'DocumentReference' }, resource: full },
      { fullUrl: BINARY_FULL_URL, request: { method: 'POST', url: 'Binary' }, resource: { resourceType: 'Binary', contentType, data: bytes.toString('base64') } },
    ],
  };
}
