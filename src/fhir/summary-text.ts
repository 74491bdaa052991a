// fhir/summary-text: one line of text for an entry of the patient summary (fhir/summary), in French,
// shared by the IPS narrative and the PDF: what it is (the coded concept's text or display) and its
// details (value, dose, date, status). Pure.

import type { Patient, Resource } from '@medplum/fhirtypes';

export interface Line {
  label: string;
  detail?: string;
}

/** A summary as people read it (the PDF): the patient, the sections' lines in order, when and by whom. */
export interface SummaryView {
  patient: Patient;
  sections: { title: string; lines: Line[] }[];
  generatedAt: string;
  generatedBy: string;
}

/** A HumanName as written: its text, else prefix, given names and family name. */
export function nameOf(name: { prefix?: string[]; given?: string[]; family?: string; text?: string } | undefined): string {
  if (!name) return '';
  if (name.text) return name.text;
  return [...(name.prefix ?? []), ...(name.given ?? []), name.family ?? ''].filter(Boolean).join(' ');
}

interface Concept {
  text?: string;
  coding?: { system?: string; code?: string; display?: string }[];
}
interface Quantity {
  value?: number;
  unit?: string;
  code?: string;
}

/** The words of a concept: its text, else a coding's display, else a code. */
export function conceptText(concept: Concept | undefined): string | undefined {
  if (!concept) return undefined;
  return concept.text ?? concept.coding?.find((c) => c.display)?.display ?? concept.coding?.find((c) => c.code)?.code;
}

/** A FHIR date or dateTime as French readers write it: 07/12/2026 (the day only). */
export function frenchDate(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const match = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(value);
  if (!match) return value;
  const [, year, month, day] = match;
  return [day, month, year].filter(Boolean).join('/');
}

function quantity(q: Quantity | undefined): string | undefined {
  if (q?.value === undefined) return undefined;
  const unit = q.unit ?? q.code;
  // French decimals use a comma.
  return `${String(q.value).replace('.', ',')}${unit ? ` ${unit}` : ''}`;
}

const SYSTOLIC = '8480-6';
const DIASTOLIC = '8462-4';

function observationValue(r: Record<string, unknown>): string | undefined {
  const direct = quantity(r.valueQuantity as Quantity | undefined) ?? (r.valueString as string | undefined) ?? conceptText(r.valueCodeableConcept as Concept | undefined);
  if (direct) return direct;
  // Blood pressure: systolic/diastolic components (LOINC 8480-6 and 8462-4).
  const components = (r.component as { code?: Concept; valueQuantity?: Quantity }[] | undefined) ?? [];
  const part = (code: string) => components.find((c) => c.code?.coding?.some((x) => x.code === code))?.valueQuantity;
  const sys = part(SYSTOLIC);
  const dia = part(DIASTOLIC);
  if (sys?.value !== undefined && dia?.value !== undefined) return `${sys.value}/${dia.value} ${sys.unit ?? sys.code ?? 'mm[Hg]'}`;
  return undefined;
}

const CRITICALITY: Record<string, string> = { low: 'criticité faible', high: 'criticité élevée', 'unable-to-assess': 'criticité non évaluable' };
const STATUS: Record<string, string> = { active: 'en cours', completed: 'terminé', stopped: 'arrêté', 'on-hold': 'suspendu', intended: 'prévu', 'not-taken': 'non pris' };

const joined = (parts: (string | undefined)[]) => parts.filter((p): p is string => !!p).join(' ; ') || undefined;

/** The line of one entry. */
export function describe(resource: Resource): Line {
  const r = resource as unknown as Record<string, unknown>;
  const line = (label: string | undefined, detail: string | undefined): Line => ({ label: label ?? resource.resourceType, ...(detail ? { detail } : {}) });
  switch (resource.resourceType) {
    case 'AllergyIntolerance': {
      const reactions = ((r.reaction as { manifestation?: Concept[] }[] | undefined) ?? []).flatMap((x) => x.manifestation ?? []).map(conceptText);
      return line(conceptText(r.code as Concept), joined([CRITICALITY[r.criticality as string], reactions.length > 0 ? `réaction : ${reactions.join(', ')}` : undefined]));
    }
    case 'MedicationStatement': {
      const dosage = ((r.dosage as { text?: string }[] | undefined) ?? []).map((d) => d.text).filter(Boolean).join(', ');
      const since = frenchDate((r.effectivePeriod as { start?: string } | undefined)?.start ?? (r.effectiveDateTime as string | undefined));
      return line(conceptText(r.medicationCodeableConcept as Concept), joined([dosage || undefined, STATUS[r.status as string], since ? `depuis le ${since}` : undefined]));
    }
    case 'Condition': {
      const onset = frenchDate(r.onsetDateTime as string | undefined);
      return line(conceptText(r.code as Concept), onset ? `depuis le ${onset}` : undefined);
    }
    case 'Immunization': {
      const date = frenchDate(r.occurrenceDateTime as string | undefined);
      return line(conceptText(r.vaccineCode as Concept), date ? `le ${date}` : undefined);
    }
    case 'Observation': {
      const date = frenchDate(r.effectiveDateTime as string | undefined);
      return line(conceptText(r.code as Concept), joined([observationValue(r), date ? `le ${date}` : undefined]));
    }
    case 'DocumentReference': {
      const date = frenchDate(r.date as string | undefined);
      return line((r.description as string | undefined) ?? conceptText(r.type as Concept), date ? `déposé le ${date}` : undefined);
    }
    default:
      return line(undefined, undefined);
  }
}
