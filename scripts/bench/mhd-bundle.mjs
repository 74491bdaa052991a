// The Provide Document Bundle the MHD benchmarks push (scripts/bench/mhd.mjs, provide-steps.mjs):
// MHD Comprehensive, one SubmissionSet, one DocumentReference, its PDF as a Binary, for one patient
// known by INS.

import crypto from 'node:crypto';

export const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
export const INS = '277076322082910';
const UNIQUE_ID_TYPE = { coding: [{ system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/IHE.MHD.MHDIdentifierType', code: 'uniqueId' }] };

/** An ITI-65 Provide Document Bundle (MHD Comprehensive) with `bytes` as its one PDF; `__UID__` marks its uniqueIds. */
export function provideBundle(bytes, ins = INS) {
  const subject = { reference: `Patient?identifier=${INS_SYSTEM}|${ins}` };
  return JSON.stringify({
    resourceType: 'Bundle',
    type: 'transaction',
    meta: { profile: ['https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle'] },
    entry: [
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001',
        request: { method: 'POST', url: 'List' },
        resource: {
          resourceType: 'List',
          extension: [
            { url: 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType', valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '225728007' }] } },
            { url: 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId', valueIdentifier: { value: 'urn:oid:1.2.250.1.999.1' } },
          ],
          identifier: [{ use: 'usual', system: 'urn:ietf:rfc:3986', type: UNIQUE_ID_TYPE, value: 'urn:oid:1.2.250.1.999.2.__UID__' }],
          status: 'current',
          mode: 'working',
          code: { coding: [{ system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes', code: 'submissionset' }] },
          subject,
          date: new Date().toISOString(),
          entry: [{ item: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000002' } }],
        },
      },
      {
        fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000002',
        request: { method: 'POST', url: 'DocumentReference' },
        resource: {
          resourceType: 'DocumentReference',
          masterIdentifier: { system: 'urn:ietf:rfc:3986', type: UNIQUE_ID_TYPE, value: 'urn:oid:1.2.250.1.999.3.__UID__' },
          status: 'current',
          securityLabel: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }] }],
          context: {
            sourcePatientInfo: subject,
            facilityType: { coding: [{ system: 'http://snomed.info/sct', code: '82242000' }] },
            practiceSetting: { coding: [{ system: 'http://snomed.info/sct', code: '408467006' }] },
          },
          type: { coding: [{ system: 'http://loinc.org', code: '11502-2', display: 'Laboratory report' }] },
          category: [{ coding: [{ system: 'http://loinc.org', code: '11502-2' }] }],
          subject,
          date: new Date().toISOString(),
          author: [{ reference: 'Organization/lab' }],
          content: [
            {
              attachment: {
                contentType: 'application/pdf',
                language: 'fr-FR',
                creation: new Date().toISOString(),
                url: 'urn:uuid:00000000-0000-4000-8000-000000000003',
                size: bytes.length,
                hash: crypto.createHash('sha1').update(bytes).digest('base64'),
              },
              format: { system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode', code: 'urn:ihe:iti:xds-sd:pdf:2008' },
            },
          ],
        },
      },
      { fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000003', request: { method: 'POST', url: 'Binary' }, resource: { resourceType: 'Binary', contentType: 'application/pdf', data: bytes.toString('base64') } },
    ],
  });
}

/** `size` bytes that start as a PDF, random after that (no two share a blob). */
export const pdf = (size) => Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(size - 9)]);

