// fhir/summary: GET Patient/[id]/$summary (HL7 IPS, http://hl7.org/fhir/uv/ips/OperationDefinition/summary):
// an International Patient Summary document Bundle built from the medical profile as the caller
// may see it (docs/summary.md). Everything is read through the interactions the server answers
// with (fhir/read for the Patient, fhir/search for each section), so the policy decides every
// entry: a masked or refused resource never appears, not even as a count, and a section the caller
// sees nothing of reads exactly as one with nothing in it. The interaction is recorded once, like
// any read, by fhir/audited (the Bundle's entries are what it touched). The PDF rendition
// (`_format=application/pdf` or `Accept: application/pdf`) is fhir/summary-pdf.

import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Composition, CompositionSection, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import { professionDisplay } from '../policy/matrix.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import type { Operation } from './operations.js';
import { read } from './read.js';
import { readable } from './readable.js';
import { bundle } from './bundle.js';
import { describe, nameOf, type Line, type SummaryView } from './summary-text.js';
import { renderSummaryPdf } from './summary-pdf.js';

const LOINC = 'http://loinc.org';
/** Canonical URLs of the HL7 IPS IG (hl7.fhir.uv.ips 2.0.1, input/fsh/profiles). */
export const IPS = {
  operation: 'http://hl7.org/fhir/uv/ips/OperationDefinition/summary',
  bundle: 'http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips',
  composition: 'http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips',
};
/** R4 ValueSet list-empty-reason: "information not available", said of a section the caller sees nothing in, whatever the reason. */
const EMPTY_REASON = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/list-empty-reason', code: 'unavailable', display: 'Unavailable' }] };

/** The LOINC codes of the measures the vital signs section shows, the latest of each. */
export const MEASURES = { weight: '29463-7', height: '8302-2', bloodPressure: '85354-9' } as const;
/** The type of an advance directive document (the IPS section's code: docs/profile.md). */
export const ADVANCE_DIRECTIVE = '42348-3';

/** A section of the summary: which IPS section (its LOINC code from CompositionUvIps.fsh), its French title, what it lists. */
interface SectionSpec {
  key: 'allergies' | 'medications' | 'problems' | 'pastProblems' | 'immunizations' | 'vitalSigns' | 'advanceDirectives';
  code: string;
  display: string;
  title: string;
  /** Required by the IPS Composition (1..1): present even when empty, with emptyReason (ips-comp-1). */
  required: boolean;
  type: string;
  params: (patientId: string) => [string, string][];
  /** Which of the readable resources the section lists. */
  keep?: (resources: Resource[]) => Resource[];
}

const INACTIVE_CONDITION = new Set(['inactive', 'remission', 'resolved']);
const clinicalStatus = (r: Resource) => (r as { clinicalStatus?: { coding?: { code?: string }[] } }).clinicalStatus?.coding?.[0]?.code;

/** The newest Observation of each measure code. */
function latestMeasures(resources: Resource[]): Resource[] {
  const latest = new Map<string, Resource>();
  const when = (r: Resource) => (r as { effectiveDateTime?: string }).effectiveDateTime ?? (r as { issued?: string }).issued ?? '';
  for (const r of resources) {
    const code = (r as { code?: { coding?: { system?: string; code?: string }[] } }).code?.coding?.find((c) => c.system === LOINC && (Object.values(MEASURES) as string[]).includes(c.code ?? ''))?.code;
    if (!code) continue;
    const seen = latest.get(code);
    if (!seen || when(r) > when(seen)) latest.set(code, r);
  }
  return (Object.values(MEASURES) as string[]).map((code) => latest.get(code)).filter((r): r is Resource => r !== undefined);
}

export const SECTIONS: readonly SectionSpec[] = [
  { key: 'allergies', code: '48765-2', display: 'Allergies and adverse reactions Document', title: 'Allergies', required: true, type: 'AllergyIntolerance', params: (p) => [['patient', p]] },
  { key: 'medications', code: '10160-0', display: 'History of Medication use Narrative', title: 'Traitements', required: true, type: 'MedicationStatement', params: (p) => [['patient', p]] },
  { key: 'problems', code: '11450-4', display: 'Problem list - Reported', title: 'Problèmes', required: true, type: 'Condition', params: (p) => [['patient', p]], keep: (rs) => rs.filter((r) => !INACTIVE_CONDITION.has(clinicalStatus(r) ?? '')) },
  { key: 'pastProblems', code: '11348-0', display: 'History of Past illness Narrative', title: 'Antécédents', required: false, type: 'Condition', params: (p) => [['patient', p]], keep: (rs) => rs.filter((r) => INACTIVE_CONDITION.has(clinicalStatus(r) ?? '')) },
  { key: 'immunizations', code: '11369-6', display: 'History of Immunization Narrative', title: 'Vaccinations', required: false, type: 'Immunization', params: (p) => [['patient', p]] },
  {
    key: 'vitalSigns',
    code: '8716-3',
    display: 'Vital signs',
    title: 'Dernières mesures',
    required: false,
    type: 'Observation',
    params: (p) => [['patient', p], ['code', Object.values(MEASURES).map((c) => `${LOINC}|${c}`).join(',')]],
    keep: latestMeasures,
  },
  { key: 'advanceDirectives', code: '42348-3', display: 'Advance directives', title: 'Directives anticipées', required: false, type: 'DocumentReference', params: (p) => [['patient', p], ['type', `${LOINC}|${ADVANCE_DIRECTIVE}`], ['status', 'current']] },
];

/** Entries a section reads at most (pages of the server's largest size). */
const MAX_PER_SECTION = 1000;

/** What was entered in error is no part of a summary. */
function inError(r: Resource): boolean {
  const status = (r as { status?: string }).status;
  const verification = (r as { verificationStatus?: { coding?: { code?: string }[] } }).verificationStatus?.coding?.[0]?.code;
  return status === 'entered-in-error' || verification === 'entered-in-error';
}

/** Who generated the summary, as a reference and a name for people (French: the PDF's "par …"). */
async function generator(ctx: FhirContext, req: FhirRequest, patient: Patient): Promise<{ reference: { reference?: string; display: string }; practitioner?: Practitioner }> {
  const actor = req.actor;
  switch (actor?.kind) {
    case 'practitioner': {
      const [practitioner] = (await readable(ctx, req, 'Practitioner', [['_id', actor.practitionerId]], 1)) as Practitioner[];
      const name = practitioner ? nameOf(practitioner.name?.[0]) : '';
      const profession = professionDisplay(actor.profession);
      const display = [name || `Practitioner/${actor.practitionerId}`, profession ? `(${profession})` : ''].filter(Boolean).join(' ');
      return { reference: { reference: `Practitioner/${actor.practitionerId}`, display }, ...(practitioner ? { practitioner } : {}) };
    }
    case 'patient':
      return { reference: { reference: `Patient/${actor.patientId}`, display: `${nameOf(patient.name?.[0]) || `Patient/${actor.patientId}`} (le patient)` } };
    case 'representative':
      return { reference: { reference: `RelatedPerson/${actor.relatedPersonId}`, display: `RelatedPerson/${actor.relatedPersonId} (représentant légal)` } };
    case 'system':
      return { reference: { display: `système ${actor.clientId}` } };
    default:
      return { reference: { display: 'Carnet' } };
  }
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A section's narrative (IPS: section.text SHALL be populated): its lines as an XHTML list. */
function narrative(lines: Line[]): CompositionSection['text'] {
  const items = lines.length === 0 ? '<p>Aucune information disponible</p>' : `<ul>${lines.map((l) => `<li>${escapeXml(l.detail ? `${l.label} — ${l.detail}` : l.label)}</li>`).join('')}</ul>`;
  return { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${items}</div>` };
}

/** The IPS document Bundle and its view, from what the caller may read of the patient's record. */
export async function buildSummary(ctx: FhirContext, req: FhirRequest, patientId: string): Promise<{ document: Bundle; view: SummaryView }> {
  // The Patient as a read answers it: 404 when hidden (no relationship, blocked, closed account), exactly as when missing.
  const base = { ...req, method: 'GET' as const, query: [] as [string, string][], body: { kind: 'none' as const } };
  const { ifNoneMatch: _inm, ifModifiedSince: _ims, ...plain } = base;
  const patient = (await read(ctx, { ...plain, target: { kind: 'instance', type: 'Patient', id: patientId } }, 'Patient', patientId)).resource as Patient;
  const now = ctx.now();
  const byType = new Map<string, Promise<Resource[]>>();
  const of = (spec: SectionSpec) => {
    const key = `${spec.type}?${new URLSearchParams(spec.params(patientId)).toString()}`;
    if (!byType.has(key)) byType.set(key, readable(ctx, plain, spec.type, spec.params(patientId), MAX_PER_SECTION).then((rs) => rs.filter((r) => !inError(r))));
    return byType.get(key) as Promise<Resource[]>;
  };
  const sections: { spec: SectionSpec; resources: Resource[] }[] = [];
  for (const spec of SECTIONS) {
    const all = await of(spec);
    sections.push({ spec, resources: spec.keep ? spec.keep(all) : all });
  }
  const author = await generator(ctx, plain, patient);
  const composition: Composition & { id: string } = {
    resourceType: 'Composition',
    id: randomUUID(),
    meta: { profile: [IPS.composition] },
    status: 'final',
    type: { coding: [{ system: LOINC, code: '60591-5', display: 'Patient summary Document' }] },
    subject: { reference: `Patient/${patientId}` },
    date: now,
    author: [author.reference],
    title: 'Synthèse médicale (International Patient Summary)',
    // A section the caller sees nothing of is left out, or (when IPS requires it) says "unavailable":
    // the same words whether nothing exists or nothing is open to the caller.
    section: sections
      .filter(({ spec, resources }) => spec.required || resources.length > 0)
      .map(({ spec, resources }) => ({
        title: spec.title,
        code: { coding: [{ system: LOINC, code: spec.code, display: spec.display }] },
        text: narrative(resources.map(describe)),
        ...(resources.length > 0 ? { entry: resources.map((r) => ({ reference: `${r.resourceType}/${r.id}` })) } : { emptyReason: EMPTY_REASON }),
      })),
  };
  const seen = new Set<string>();
  const entries: BundleEntry[] = [{ fullUrl: `urn:uuid:${composition.id}`, resource: composition }];
  for (const resource of [patient, ...sections.flatMap((s) => s.resources), ...(author.practitioner ? [author.practitioner] : [])]) {
    const key = `${resource.resourceType}/${resource.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    entries.push({ fullUrl: `${ctx.baseUrl}/${key}`, resource });
  }
  const document = bundle('document', entries, {
    id: randomUUID(),
    meta: { profile: [IPS.bundle] },
    identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` },
    timestamp: now,
  });
  const view: SummaryView = {
    patient,
    sections: sections.filter(({ spec, resources }) => spec.key !== 'pastProblems' || resources.length > 0).map(({ spec, resources }) => ({ title: spec.title, lines: resources.map(describe) })),
    generatedAt: now,
    generatedBy: author.reference.display,
  };
  return { document, view };
}

async function summary(ctx: FhirContext, req: FhirRequest, _type: string, id: string): Promise<FhirResponse> {
  const { document, view } = await buildSummary(ctx, req, id);
  return { status: 200, headers: {}, resource: document, rendition: { mediaType: 'application/pdf', render: () => renderSummaryPdf(view) } };
}

export const SUMMARY_OPERATION: Operation = {
  name: 'summary',
  definition: IPS.operation,
  documentation:
    'GET Patient/[id]/$summary: an International Patient Summary (HL7 IPS document Bundle: Composition with the allergies, medications, problems, immunizations, last vital signs and advance directives sections, and the resources they list) built from the patient\'s medical profile as the caller may read it: masked or refused resources never appear, and an empty required section says "unavailable" whatever the reason. `_format=application/pdf` or `Accept: application/pdf` answers a PDF of it in French. Needs read permission on Patient; audited as one read (docs/summary.md).',
  types: ['Patient'],
  instance: { methods: ['GET'], handler: summary },
};
