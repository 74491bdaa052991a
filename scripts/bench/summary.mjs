#!/usr/bin/env node
// Patient summaries per second (not a test): GET Patient/p1/$summary as a PDF and as the IPS JSON
// Bundle, for a patient with a full medical profile, by their general practitioner (the policy
// decides every entry; every summary is audited). Requires a build:
//   npm run build && node scripts/bench/summary.mjs [--duration 10] [--connections 4] [--entries 20]
// The app is built in this process on a temporary SQLite store (scripts/bench/server.mjs
// inProcessApps). The profile is written through HTTP by the feed: `--entries` of each kind
// (allergies, treatments, problems, vaccinations, measures of weight, height and blood pressure),
// one advance directive, and one masked allergy. Prints requests per second and latency of each.
// Figures: docs/summary.md.

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { inProcessApps, PROJECT } from './server.mjs';

const { values: opts } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '4' }, entries: { type: 'string', default: '20' } } });
const dist = async (file) => import(pathToFileURL(path.join(PROJECT, 'dist', file)).href);
const { CARNET_CLAIMS: c } = await dist('auth/claims.js');
const { apps: [server], close } = await inProcessApps('summary');
const { base, token } = server;
const LOINC = 'http://loinc.org';
const subject = { reference: 'Patient/p1' };

const loader = await token('loader', { [c.kind]: 'system', client_id: 'loader', scope: 'system/*.cruds system/Practitioner.cud' });
const patientToken = await token('p1', { [c.kind]: 'patient', [c.fhirUser]: 'Patient/p1', scope: 'patient/*.cruds' });
async function write(resource, bearer = loader) {
  const url = resource.id ? `${base.url}/${resource.resourceType}/${resource.id}` : `${base.url}/${resource.resourceType}`;
  const res = await fetch(url, { method: resource.id ? 'PUT' : 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify(resource) });
  if (res.status >= 300) throw new Error(`${resource.resourceType}: ${res.status} ${await res.text()}`);
  return res.json();
}

await write({ resourceType: 'Practitioner', id: 'dr-gp', name: [{ prefix: ['Dr'], given: ['Hélène'], family: 'Garçon' }] });
await write({ resourceType: 'Patient', id: 'p1', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '269054958815780' }], name: [{ given: ['Françoise'], family: 'Lefèvre-Cœur' }], birthDate: '1969-05-18', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] });
const n = Number(opts.entries);
const day = (i) => new Date(Date.UTC(2026, 0, 1) + i * 86_400_000).toISOString();
const quantity = (value, unit) => ({ value, unit, system: 'http://unitsofmeasure.org', code: unit });
for (let i = 0; i < n; i++) {
  await write({ resourceType: 'AllergyIntolerance', patient: subject, code: { text: `Allergène n°${i} (pénicilline, arachide…)` }, criticality: 'high', reaction: [{ manifestation: [{ text: 'Éruption cutanée' }] }] });
  await write({ resourceType: 'MedicationStatement', status: 'active', subject, medicationCodeableConcept: { text: `Lévothyroxine ${i} µg` }, dosage: [{ text: '1 comprimé le matin' }] });
  await write({ resourceType: 'Condition', subject, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: i % 3 === 0 ? 'resolved' : 'active' }] }, code: { text: `Problème n°${i} : hypothyroïdie` } });
  await write({ resourceType: 'Immunization', status: 'completed', patient: subject, vaccineCode: { text: `Vaccin n°${i} contre la grippe saisonnière` }, occurrenceDateTime: day(i) });
  await write({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '29463-7' }], text: 'Poids' }, subject, effectiveDateTime: day(i), valueQuantity: quantity(70 + i / 10, 'kg') });
  await write({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '8302-2' }], text: 'Taille' }, subject, effectiveDateTime: day(i), valueQuantity: quantity(172, 'cm') });
  await write({
    resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '85354-9' }], text: 'Pression artérielle' }, subject, effectiveDateTime: day(i),
    component: [{ code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: quantity(120 + i, 'mm[Hg]') }, { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: quantity(80, 'mm[Hg]') }],
  });
}
await write({ resourceType: 'DocumentReference', status: 'current', type: { coding: [{ system: LOINC, code: '42348-3' }] }, subject, author: [subject], description: 'Directives anticipées', content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('Directives').toString('base64') } }] }, patientToken);
const masked = await write({ resourceType: 'AllergyIntolerance', patient: subject, code: { text: 'Masquée' } });
await write({
  resourceType: 'Consent', status: 'active', scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
  category: [{ coding: [{ system: LOINC, code: '59284-0' }] }], patient: subject, dateTime: '2026-01-01T00:00:00Z',
  policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
  provision: { type: 'deny', data: [{ meaning: 'instance', reference: { reference: `AllergyIntolerance/${masked.id}` } }] },
}, patientToken);

const gp = await token('dr-gp', { [c.kind]: 'practitioner', [c.fhirUser]: 'Practitioner/dr-gp', [c.profession]: '10', scope: 'user/*.rs' });
const url = `${base.url}/Patient/p1/$summary`;
const check = await fetch(`${url}?_format=application/pdf`, { headers: { authorization: `Bearer ${gp}` } });
const pdf = Buffer.from(await check.arrayBuffer());
if (check.status !== 200 || pdf.subarray(0, 5).toString('latin1') !== '%PDF-') throw new Error(`the summary PDF: ${check.status}`);
const json = await (await fetch(url, { headers: { authorization: `Bearer ${gp}` } })).json();
console.log(`profile: ${n} of each kind (${7 * n + 2} entries, 1 masked); summary: ${json.entry.length} Bundle entries, PDF ${pdf.length} bytes`);

const run = (label, headers) =>
  new Promise((resolve, reject) =>
    autocannon({ url, connections: Number(opts.connections), duration: Number(opts.duration), headers: { authorization: `Bearer ${gp}`, ...headers } }, (error, result) => {
      if (error) return reject(error);
      const failed = result.non2xx + result.errors;
      console.log(`${label}: ${result.requests.average.toFixed(1)} summaries/s, latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms${failed ? `, ${failed} failed` : ''}`);
      resolve(result);
    }),
  );
await run('PDF (Accept: application/pdf)', { accept: 'application/pdf' });
await run('IPS JSON Bundle', { accept: 'application/fhir+json' });
await close();
