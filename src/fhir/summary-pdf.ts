// fhir/summary-pdf: the patient summary (fhir/summary) as a PDF, in French, made with pdfkit.
// Helvetica is one of the 14 standard PDF fonts: nothing is embedded, and pdfkit encodes its text
// in WinAnsi, which holds every letter French needs (é è à ç œ Œ « » …); a character outside it
// is written as "?" rather than dropped (winAnsi below), so that no word silently loses a letter.

import PDFDocument from 'pdfkit';
import { INS_SYSTEM } from './accounts.js';
import { frenchDate, nameOf, type Line, type SummaryView } from './summary-text.js';

// The characters WinAnsiEncoding has beyond Latin-1 (PDF 32000-1, Annex D.2).
const WIN_ANSI_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

/** Text as the standard fonts can show it: NFC (é as one letter), and "?" for what WinAnsi lacks. */
export function winAnsi(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFC')) {
    const code = ch.codePointAt(0) as number;
    const latin1 = (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff);
    out += latin1 || WIN_ANSI_EXTRA.has(ch) || ch === '\n' ? ch : '?';
  }
  return out;
}

const GENDER: Record<string, string> = { male: 'masculin', female: 'féminin', other: 'autre', unknown: 'inconnu' };

/** "Généré le 07/12/2026 à 15:40 UTC" */
function generatedOn(instant: string): string {
  const time = /T(\d{2}:\d{2})/.exec(instant)?.[1];
  return `le ${frenchDate(instant) ?? instant}${time ? ` à ${time} UTC` : ''}`;
}

export async function renderSummaryPdf(view: SummaryView): Promise<Buffer> {
  const doc = new PDFDocument({ size: 'A4', margin: 50, info: { Title: 'Synthèse médicale', Producer: 'Carnet', Creator: 'Carnet' } });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  const text = (value: string, options?: PDFKit.Mixins.TextOptions) => doc.text(winAnsi(value), options);

  doc.font('Helvetica-Bold').fontSize(20);
  text('Synthèse médicale');
  doc.font('Helvetica').fontSize(9).fillColor('#555555');
  text('Patient Summary (HL7 IPS)');
  doc.moveDown();

  const { patient } = view;
  const ins = patient.identifier?.find((i) => i.system === INS_SYSTEM)?.value;
  doc.fillColor('black').font('Helvetica-Bold').fontSize(13);
  text('Identité');
  doc.font('Helvetica').fontSize(11);
  text(`Nom : ${nameOf(patient.name?.[0]) || 'non renseigné'}`);
  text(`Date de naissance : ${frenchDate(patient.birthDate) ?? 'non renseignée'}`);
  if (patient.gender) text(`Sexe : ${GENDER[patient.gender] ?? patient.gender}`);
  text(`INS : ${ins ?? 'non renseigné'}`);
  doc.moveDown();

  for (const section of view.sections) {
    doc.font('Helvetica-Bold').fontSize(13);
    text(section.title);
    doc.font('Helvetica').fontSize(11);
    if (section.lines.length === 0) text('Aucune information disponible', { indent: 12 });
    for (const line of section.lines as Line[]) text(`• ${line.label}${line.detail ? ` — ${line.detail}` : ''}`, { indent: 12 });
    doc.moveDown();
  }

  doc.moveDown();
  doc.font('Helvetica-Oblique').fontSize(9).fillColor('#555555');
  text(`Généré ${generatedOn(view.generatedAt)} par ${view.generatedBy}`);
  doc.end();
  return done;
}
