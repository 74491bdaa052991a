// The patient summary as a PDF (docs/summary.md), through the real server: negotiated by _format or
// Accept, made by pdfkit, read back to text with pdfjs-dist, in French with its accents, and
// holding only what the reader may see.
import t from 'tap';
import { fhir } from '../helpers.js';
import { GP, PATIENT, PODIATRIST, profileWorld } from './fixture.js';

const world = await profileWorld();
t.teardown(() => world.server.close());
const { app } = world.server;

/** The text of a PDF, page after page, as pdfjs-dist extracts it. */
async function textOf(pdf: Buffer): Promise<string> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const doc = await pdfjs.getDocument({ data: new Uint8Array(pdf), verbosity: 0 }).promise;
  const pages: string[] = [];
  for (let n = 1; n <= doc.numPages; n++) {
    const content = await (await doc.getPage(n)).getTextContent();
    pages.push(content.items.map((item) => ('str' in item ? item.str : '')).join(' '));
  }
  await doc.destroy();
  return pages.join('\n').replace(/\s+/g, ' ');
}

const pdfOf = async (headers: Record<string, string>, query = '?_format=application/pdf') =>
  app.inject({ method: 'GET', url: `/fhir/Patient/p1/$summary${query}`, headers });

t.test('_format=application/pdf answers a PDF of the summary, in French with its accents', async (t) => {
  const res = await pdfOf(await world.as(PATIENT));
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/pdf/);
  t.equal(res.rawPayload.subarray(0, 5).toString('latin1'), '%PDF-');
  const text = await textOf(res.rawPayload);
  for (const heading of ['Synthèse médicale', 'Identité', 'Allergies', 'Traitements', 'Problèmes', 'Antécédents', 'Vaccinations', 'Dernières mesures', 'Directives anticipées']) {
    t.ok(text.includes(heading), `heading "${heading}"`);
  }
  t.ok(text.includes('Françoise Zoé Lefèvre-Cœur'), 'the name, with ç, é, è and œ');
  t.ok(text.includes('INS : 269054958815780'), 'the INS');
  t.ok(text.includes('Date de naissance : 18/05/1969'));
  t.ok(text.includes('Pénicilline — criticité élevée ; réaction : Éruption cutanée'), 'an allergy with its reaction');
  t.ok(text.includes('Arachide'), 'the patient sees what they masked');
  t.match(text, /Lévothyroxine 75 [µμ]g — 1 comprimé le matin ; en cours ; depuis le 10\/01\/2025/, 'a treatment with its dosage (µ may read back as the Greek mu)');
  t.ok(text.includes('Hypothyroïdie'), 'a problem (ï)');
  t.ok(text.includes('Vaccin contre la grippe saisonnière — le 15/10/2026'), 'a vaccination');
  t.ok(text.includes('Poids — 72,5 kg ; le 20/11/2026'), 'the last weight, with a French decimal comma');
  t.notOk(text.includes('70 kg'), 'not the older one');
  t.ok(text.includes('Pression artérielle — 125/80 mm[Hg]'), 'the blood pressure from its components');
  t.ok(text.includes('Mes directives anticipées : pas d?acharnement thérapeutique') || text.includes('pas d’acharnement thérapeutique'), 'the advance directive');
  t.match(text, /Généré le \d{2}\/\d{2}\/\d{4} à \d{2}:\d{2} UTC par Françoise Zoé Lefèvre-Cœur \(le patient\)/, 'when and by whom (à)');
});

t.test('Accept: application/pdf negotiates the PDF too; JSON stays the default', async (t) => {
  const headers = await world.as(GP);
  const pdf = await pdfOf({ ...headers, accept: 'application/pdf' }, '');
  t.equal(pdf.statusCode, 200);
  t.match(pdf.headers['content-type'], /^application\/pdf/);
  const text = await textOf(pdf.rawPayload);
  t.match(text, /par Dr Hélène Garçon \(Médecin\)/, 'the professional who generated it');
  t.notOk(text.includes('Arachide'), 'the masked allergy is not in the professional\'s PDF');
  const plain = await pdfOf(headers, '');
  t.match(plain.headers['content-type'], /^application\/fhir\+json/);
  const either = await pdfOf({ ...headers, accept: 'application/fhir+json, application/pdf;q=0.5' }, '');
  t.match(either.headers['content-type'], /^application\/fhir\+json/, 'the preferred type wins');
});

t.test('a podiatrist\'s PDF has no treatment or problem, and says the same as for an empty profile', async (t) => {
  const text = await textOf((await pdfOf(await world.as(PODIATRIST))).rawPayload);
  t.ok(text.includes('Pénicilline'));
  for (const hidden of ['Lévothyroxine', 'Hypothyroïdie', 'Appendicite', 'grippe', 'Poids']) t.notOk(text.includes(hidden), `no ${hidden}`);
  t.match(text, /Traitements Aucune information disponible Problèmes Aucune information disponible/);
});

t.test('a PDF is only for the summary: a plain read with _format=application/pdf is 406', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/fhir/Patient/p1?_format=application/pdf', headers: await world.as(PATIENT) });
  t.equal(res.statusCode, 406);
  t.match(res.headers['content-type'], /application\/fhir\+json/);
});

t.test('a refused summary is an OperationOutcome, never a PDF', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/fhir/Patient/nobody/$summary?_format=application/pdf', headers: await world.as(GP) });
  t.equal(res.statusCode, 404);
  t.match(res.headers['content-type'], /application\/fhir\+json/);
});
