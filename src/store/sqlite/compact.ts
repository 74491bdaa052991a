// store/sqlite/compact: the stored form of the resources kept compact in resource_version.content
// (COMPACT_TYPES): the JSON, deflated with a preset dictionary (zlib, RFC 1950 section 2.2), as a
// BLOB whose first byte names the dictionary; every other resource is its JSON as TEXT. An
// AuditEvent's JSON is mostly the constant codings of IHE BALP (about 2.5 KB, docs/performance.md,
// Storage): against a dictionary holding them it deflates to a few hundred bytes. Reading inflates
// the very string that was stored, so a client reads the same JSON byte for byte
// (test/store/compact.test.ts). A dictionary is part of the file format: never change one; add
// another under a new first byte and keep reading the old.

import zlib from 'node:zlib';

/** The types stored compact (immutable, written in bulk, read rarely: the access log). */
export const COMPACT_TYPES: ReadonlySet<string> = new Set(['AuditEvent']);

// Dictionary 1: two AuditEvents as audit/event writes them (a patient's refused search, a
// professional's read), ids and instants blanked; deflate finds the most common strings last.
const DICTIONARIES: Record<number, Buffer> = {
  1: Buffer.from(
    '{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"Restful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"search-type","display":"search-type"}],"action":"E","recorded":"2026-01-01T00:00:00.000Z","outcome":"4","outcomeDesc":"Access denied","agent":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110153","display":"Source Role ID"}]},"who":{"display":"unknown client"},"requestor":false,"network":{"address":"1.1.1.1","type":"2"}},{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110152","display":"Destination Role ID"}]},"who":{"display":"https://"},"requestor":false,"network":{"address":"https://","type":"5"}},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},"who":{"reference":"Patient/"},"requestor":true}],"source":{"observer":{"display":"https://"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"entity":[{"what":{"reference":"DocumentReference/x"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4","display":"Domain Resource"}},{"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"24","display":"Query"},"description":"DocumentReference","query":"YQ=="},{"what":{"reference":"Patient/x"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}}],"id":"","meta":{"versionId":"1","lastUpdated":""}}' +
      '{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"Restful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read","display":"read"}],"action":"R","recorded":"2026-01-01T00:00:00.000Z","outcome":"0","purposeOfEvent":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT","display":"treatment"}]}],"agent":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110152","display":"Destination Role ID"}]},"who":{"display":"unknown client"},"requestor":false,"network":{"address":"1.1.1.1","type":"2"}},{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110153","display":"Source Role ID"}]},"who":{"display":"https://"},"requestor":false,"network":{"address":"https://","type":"5"}},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},"role":[{"coding":[{"system":"https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante","code":"10"}]}],"who":{"reference":"Practitioner/"},"requestor":true,"purposeOfUse":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT","display":"treatment"}]}]}],"source":{"observer":{"display":"https://"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"entity":[{"what":{"reference":"DocumentReference/x"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4","display":"Domain Resource"}},{"what":{"reference":"Patient/x"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}}],"id":"","meta":{"versionId":"1","lastUpdated":""}}',
    'utf8',
  ),
};
const CURRENT = 1;

/** What resource_version.content holds for this resource JSON of `type`. */
export function packContent(type: string, json: string): string | Buffer {
  if (!COMPACT_TYPES.has(type)) return json;
  const deflated = zlib.deflateRawSync(Buffer.from(json, 'utf8'), { dictionary: DICTIONARIES[CURRENT], level: 9 });
  return Buffer.concat([Buffer.from([CURRENT]), deflated]);
}

/** The resource JSON of a resource_version.content value (TEXT as is, a BLOB inflated). */
export function unpackContent(content: string | Buffer): string {
  if (typeof content === 'string') return content;
  const dictionary = DICTIONARIES[content[0]];
  if (!dictionary) throw new Error(`stored content in an unknown compact form (${content[0]}): written by a newer Carnet`);
  return zlib.inflateRawSync(content.subarray(1), { dictionary }).toString('utf8');
}
