// The pure parts of the patient summary: one line per entry (fhir/summary-text) and the text the
// PDF's standard font can show (fhir/summary-pdf winAnsi).
import t from 'tap';
import type { Resource } from '@medplum/fhirtypes';
import { conceptText, describe, frenchDate, nameOf } from '../../src/fhir/summary-text.js';
import { winAnsi } from '../../src/fhir/summary-pdf.js';

t.test('winAnsi keeps every French letter and marks what the font lacks', async (t) => {
  t.equal(winAnsi('é è à ç œ Œ ù ê ï « » € …'), 'é è à ç œ Œ ù ê ï « » € …');
  t.equal(winAnsi('e\u0301te\u0301'), 'été', 'decomposed accents are composed');
  t.equal(winAnsi('≥ 5 ✓'), '? 5 ?');
});

t.test('frenchDate writes day/month/year', async (t) => {
  t.equal(frenchDate('2026-12-07T15:40:00Z'), '07/12/2026');
  t.equal(frenchDate('2026-12'), '12/2026');
  t.equal(frenchDate(undefined), undefined);
});

t.test('conceptText and nameOf', async (t) => {
  t.equal(conceptText({ coding: [{ code: 'x' }, { code: 'y', display: 'Pénicilline' }] }), 'Pénicilline');
  t.equal(conceptText({ text: 'Texte', coding: [{ display: 'autre' }] }), 'Texte');
  t.equal(nameOf({ prefix: ['Dr'], given: ['Hélène'], family: 'Garçon' }), 'Dr Hélène Garçon');
});

t.test('describe: a blood pressure from its components, a weight with a decimal comma', async (t) => {
  const bp = { resourceType: 'Observation', code: { text: 'Pression artérielle' }, effectiveDateTime: '2026-11-20', component: [{ code: { coding: [{ code: '8462-4' }] }, valueQuantity: { value: 80, unit: 'mm[Hg]' } }, { code: { coding: [{ code: '8480-6' }] }, valueQuantity: { value: 125, unit: 'mm[Hg]' } }] } as Resource;
  t.same(describe(bp), { label: 'Pression artérielle', detail: '125/80 mm[Hg] ; le 20/11/2026' });
  t.same(describe({ resourceType: 'Observation', code: { text: 'Poids' }, valueQuantity: { value: 72.5, unit: 'kg' } } as Resource), { label: 'Poids', detail: '72,5 kg' });
  t.same(describe({ resourceType: 'Condition', code: { text: 'Asthme' } } as Resource), { label: 'Asthme' });
});
