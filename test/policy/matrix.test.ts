// The access matrix (profiles/access-matrix.json): the rules the French articles state, the
// default for unknown professions, rejection of invalid files, and readableTypes agreeing with
// mayRead for every category.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadMatrix, mayRead, MATRIX_FILE, readableTypes, type DocumentFacts, type ReadableTypes } from '../../src/policy/matrix.js';
import { FIXTURE_DATA } from '../fixtures/data-paths.js';

const LOINC = 'http://loinc.org';
const A05 = 'https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire';
const A03 = 'https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument';

const PHYSICIAN = '10';
const PHARMACIST = '21';
const OPTICIAN = '28';
const DENTIST = '40';
const MIDWIFE = '50';
const NURSE = '60';
const PHYSIOTHERAPIST = '70';
const PODIATRIST = '80';

/** A document typed with LOINC `code`, optionally with a TRE_A03 class. */
function loinc(code: string, classCode?: string, authoredByPatient = false): DocumentFacts {
  return { types: [{ system: LOINC, code }], classes: classCode ? [{ system: A03, code: classCode }] : [], authoredByPatient };
}

interface Coding {
  system: string;
  code: string;
}
interface FileCategory {
  description?: string;
  types?: Coding[];
  classes?: Coding[];
  authoredByPatient?: boolean;
}
interface FileEntry {
  display?: string;
  read: '*' | string[];
  deny?: string[];
  specialties?: Record<string, { display?: string; read?: '*' | string[]; deny?: string[] }>;
}
interface MatrixFile {
  default: 'deny' | 'allow';
  categories: Record<string, FileCategory>;
  professions: Record<string, FileEntry>;
}
const shipped = JSON.parse(fs.readFileSync(MATRIX_FILE, 'utf8')) as MatrixFile;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-matrix-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileCount = 0;
/** Write a matrix file (an object is serialised, a string written as is) and return its path. */
function writeMatrix(content: unknown): string {
  const file = path.join(tmp, `matrix-${++fileCount}.json`);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}
/** The shipped matrix with a change applied. */
function variant(change: (m: MatrixFile) => void): MatrixFile {
  const copy = structuredClone(shipped);
  change(copy);
  return copy;
}

t.beforeEach(() => {
  loadMatrix();
});

// ---------------------------------------------------------------------------------------------
// What the articles say

t.test('the shipped matrix loads from profiles/ with default deny', async (t) => {
  const summary = loadMatrix();
  t.equal(summary.file, path.resolve(fileURLToPath(new URL('../../profiles/access-matrix.json', import.meta.url))));
  t.equal(summary.default, 'deny');
  for (const p of [PHYSICIAN, PHARMACIST, OPTICIAN, PODIATRIST, NURSE, PHYSIOTHERAPIST, DENTIST, MIDWIFE]) t.ok(summary.professions.includes(p), `profession ${p} is listed`);
});

t.test('a podiatrist cannot read a hospital discharge report (seeds/001)', async (t) => {
  t.notOk(mayRead(PODIATRIST, undefined, loinc('11490-0')), 'LOINC 11490-0 lettre de liaison de sortie');
  t.notOk(mayRead(PODIATRIST, undefined, loinc('34105-7')), 'LOINC 34105-7 hospital discharge summary');
  t.notOk(mayRead(PODIATRIST, undefined, loinc('18842-5')), 'LOINC 18842-5 discharge summary');
});

t.test('a podiatrist cannot read hospital-stay reports either', async (t) => {
  for (const code of ['34112-3', '11493-4', '34133-9', '67851-6', '18761-7', '15507-7']) t.notOk(mayRead(PODIATRIST, undefined, loinc(code)), code);
});

t.test('the podiatrist deny beats an allowed class or patient authorship on the same document', async (t) => {
  t.notOk(mayRead(PODIATRIST, undefined, loinc('11490-0', '42')), 'discharge letter filed under class 42 Prescription');
  t.notOk(mayRead(PODIATRIST, undefined, loinc('11490-0', undefined, true)), 'discharge letter the patient deposited');
  t.ok(mayRead(PODIATRIST, undefined, loinc('57833-6')), 'but a prescription is readable');
  t.ok(mayRead(PODIATRIST, undefined, { types: [{ system: A05, code: 'PRESC-PEDI' }], classes: [], authoredByPatient: false }), 'a podiatry prescription is readable');
});

t.test('a type coding without a system, or with another spelling of it, cannot slip past a deny', async (t) => {
  t.notOk(mayRead(PODIATRIST, undefined, { types: [{ code: '11490-0' }], classes: [{ system: A03, code: '42' }], authoredByPatient: false }), 'no system');
  t.notOk(mayRead(PODIATRIST, undefined, { types: [{ code: '34112-3' }], classes: [], authoredByPatient: true }), 'no system, deposited by the patient');
  t.notOk(
    mayRead(PODIATRIST, undefined, { types: [{ system: 'urn:oid:2.16.840.1.113883.6.1', code: '11490-0' }], classes: [{ system: A03, code: '42' }], authoredByPatient: false }),
    "LOINC's OID instead of http://loinc.org",
  );
});

t.test('a type coding without a system does not match an allow', async (t) => {
  t.notOk(mayRead(OPTICIAN, undefined, { types: [{ code: '57833-6' }], classes: [], authoredByPatient: false }));
  t.notOk(mayRead(OPTICIAN, undefined, { types: [{ system: 'http://example.org/other', code: '57833-6' }], classes: [], authoredByPatient: false }));
});

t.test('an optician reads prescriptions (seeds/004)', async (t) => {
  t.ok(mayRead(OPTICIAN, undefined, loinc('57833-6')), 'LOINC 57833-6');
  t.ok(mayRead(OPTICIAN, undefined, { types: [{ system: A05, code: 'PRESC-ORTHOPTIE' }], classes: [], authoredByPatient: false }), 'TRE_A05 PRESC-ORTHOPTIE');
  t.ok(mayRead(OPTICIAN, undefined, { types: [], classes: [{ system: A03, code: '42' }], authoredByPatient: false }), 'class 42 Prescription');
});

t.test("an optician reads an ophthalmologist's report (seeds/004)", async (t) => {
  t.ok(mayRead(OPTICIAN, undefined, loinc('78513-9')));
});

t.test('an optician reads a document the patient deposited (seeds/004)', async (t) => {
  t.ok(mayRead(OPTICIAN, undefined, { types: [{ system: A05, code: 'DOCPAT03' }], classes: [{ system: A03, code: '90' }], authoredByPatient: true }), 'CR déposé par le patient');
  t.ok(mayRead(OPTICIAN, undefined, { types: [], classes: [], authoredByPatient: true }), 'recognised by authorship alone');
  t.ok(mayRead(OPTICIAN, undefined, loinc('11488-4', undefined, true)), 'a consult note the patient uploaded');
  t.notOk(mayRead(OPTICIAN, undefined, loinc('11488-4')), 'the same type written by a professional is not readable');
});

t.test('an optician reads a functional assessment by an allied health professional (seeds/004)', async (t) => {
  t.ok(mayRead(OPTICIAN, undefined, loinc('47420-5')));
});

t.test('an optician reads care and treatment documents (seeds/004)', async (t) => {
  t.ok(mayRead(OPTICIAN, undefined, loinc('18776-5')), 'plan personnalisé de soins');
  t.ok(mayRead(OPTICIAN, undefined, loinc('11506-3')), 'suivi de soins par auxiliaire médical');
  t.ok(mayRead(OPTICIAN, undefined, { types: [], classes: [{ system: A03, code: '44' }], authoredByPatient: false }), 'class 44 Plan de soins');
  t.ok(mayRead(OPTICIAN, undefined, { types: [{ system: A05, code: 'DOCPAT02' }], classes: [], authoredByPatient: true }), 'DOCPAT02 traitement ou document de soins déposé par le patient');
});

t.test('an optician reads nothing else', async (t) => {
  for (const code of ['11490-0', '34112-3', '11502-2', '18748-4', '11488-4', '60591-5', '34874-8', '51969-4']) t.notOk(mayRead(OPTICIAN, undefined, loinc(code)), code);
});

t.test('a physician reads every document type, listed or not', async (t) => {
  for (const [name, category] of Object.entries(shipped.categories)) {
    for (const c of category.types ?? []) t.ok(mayRead(PHYSICIAN, undefined, { types: [c], classes: [], authoredByPatient: false }), `${name} ${c.code}`);
  }
  t.ok(mayRead(PHYSICIAN, undefined, loinc('51969-4')), 'molecular genetics, in no category');
  t.ok(mayRead(PHYSICIAN, undefined, { types: [], classes: [], authoredByPatient: false }), 'a document with no type at all');
  t.ok(mayRead(PHYSICIAN, 'SM54', loinc('11490-0')), 'with a specialty too');
  t.same(readableTypes(PHYSICIAN), { all: true });
});

t.test('a pharmacist reads prescriptions but not hospital reports', async (t) => {
  t.ok(mayRead(PHARMACIST, undefined, loinc('57833-6')));
  t.ok(mayRead(PHARMACIST, undefined, loinc('57828-6')));
  t.ok(mayRead(PHARMACIST, undefined, { types: [], classes: [{ system: A03, code: '42' }], authoredByPatient: false }));
  t.notOk(mayRead(PHARMACIST, undefined, loinc('11490-0')));
  t.notOk(mayRead(PHARMACIST, undefined, loinc('34112-3')));
});

t.test('a nurse reads the discharge letter for home care, not the hospital-stay report', async (t) => {
  t.ok(mayRead(NURSE, undefined, loinc('11490-0')));
  t.notOk(mayRead(NURSE, undefined, loinc('34112-3')));
});

t.test('a specialty adds to its profession; an unknown specialty gets the profession rule', async (t) => {
  t.notOk(mayRead(DENTIST, undefined, loinc('34874-8')), 'a dentist does not read an operative report');
  t.ok(mayRead(DENTIST, 'SCD02', loinc('34874-8')), 'an oral surgeon (SCD02) does');
  t.ok(mayRead(DENTIST, 'SCD02', loinc('83836-7')), 'and keeps what dentists read');
  t.notOk(mayRead(DENTIST, 'SCD01', loinc('34874-8')), 'another specialty does not');
  t.ok(mayRead(NURSE, 'SI01', loinc('34112-3')), 'an advanced practice nurse reads hospital-stay reports');
});

t.test('an unknown profession reads nothing, not even documents the patient deposited', async (t) => {
  for (const profession of ['99', '', 'constructor', '__proto__']) {
    t.notOk(mayRead(profession, undefined, loinc('57833-6')), `${JSON.stringify(profession)}: prescription`);
    t.notOk(mayRead(profession, undefined, { types: [], classes: [], authoredByPatient: true }), `${JSON.stringify(profession)}: patient document`);
    t.same(readableTypes(profession), { all: false, types: [], classes: [], patientDeposited: false, except: { types: [], classes: [], patientDeposited: false }, resourceTypes: [] });
  }
});

t.test('with default "allow", an unknown profession reads everything', async (t) => {
  loadMatrix(writeMatrix(variant((m) => (m.default = 'allow'))));
  t.ok(mayRead('99', undefined, loinc('11490-0')));
  t.same(readableTypes('99'), { all: true });
  t.notOk(mayRead(PODIATRIST, undefined, loinc('11490-0')), 'listed professions keep their rules');
});

t.test('the operator changes the rules by editing the file, without code', async (t) => {
  loadMatrix(writeMatrix(variant((m) => {
    const podiatrist = m.professions[PODIATRIST];
    podiatrist.deny = [];
    podiatrist.read = [...(podiatrist.read as string[]), 'discharge-report'];
  })));
  t.ok(mayRead(PODIATRIST, undefined, loinc('11490-0')));
  loadMatrix();
  t.notOk(mayRead(PODIATRIST, undefined, loinc('11490-0')), 'and back');
});

t.test('the French PDSm examples are classified as expected', async (t) => {
  const dir = path.join(FIXTURE_DATA, 'fr');
  interface Doc {
    type?: { coding?: { system?: string; code?: string }[] };
    category?: { coding?: { system?: string; code?: string }[] }[];
  }
  const facts = (file: string): DocumentFacts => {
    const doc = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Doc;
    return { types: doc.type?.coding ?? [], classes: (doc.category ?? []).flatMap((c) => c.coding ?? []), authoredByPatient: false };
  };
  const prescription = facts('pdsm4dmp/examples/DocumentReference-example-td3-1a-ordonnance.json');
  t.ok(mayRead(OPTICIAN, undefined, prescription), 'the DMP prescription example (57833-6) is readable by an optician');
  t.ok(mayRead(PHARMACIST, undefined, prescription), 'and by a pharmacist');
  const discharge = facts('pdsm/examples/DocumentReference-exemple-pdsm-documentreference.json');
  t.notOk(mayRead(PODIATRIST, undefined, discharge), 'the PDSm « résumé de sortie d’hospitalisation » (34133-9) is not readable by a podiatrist');
  t.ok(mayRead(PHYSICIAN, undefined, discharge));
});

// ---------------------------------------------------------------------------------------------
// The shipped file itself

t.test('every coding of the shipped file belongs to exactly one category', async (t) => {
  const owner = new Map<string, string>();
  for (const [name, category] of Object.entries(shipped.categories)) {
    for (const [kind, list] of [['type', category.types ?? []], ['class', category.classes ?? []]] as const) {
      for (const c of list) {
        const key = `${kind} ${c.system}|${c.code}`;
        t.notOk(owner.has(key), `${key} is in ${name}${owner.has(key) ? ` and in ${owner.get(key)}` : ''}`);
        owner.set(key, name);
      }
    }
  }
});

t.test('the optician reads exactly the categories of seeds/004', async (t) => {
  t.same([...(shipped.professions[OPTICIAN].read as string[])].sort(), ['allied-assessment', 'care-document', 'ophthalmology-report', 'patient-deposited', 'prescription']);
});

// ---------------------------------------------------------------------------------------------
// readableTypes and mayRead agree

/** What a search engine that pushes readableTypes into its query would return for `doc`. */
function pushedDown(r: ReadableTypes, doc: DocumentFacts): boolean {
  if (r.all) return true;
  const exact = (cs: DocumentFacts['types'], ks: { system: string; code: string }[]): boolean => cs.some((c) => ks.some((k) => c.system === k.system && c.code === k.code));
  const byCode = (cs: DocumentFacts['types'], ks: { system: string; code: string }[]): boolean => cs.some((c) => ks.some((k) => c.code === k.code));
  const allowed = exact(doc.types, r.types) || exact(doc.classes, r.classes) || (r.patientDeposited && doc.authoredByPatient);
  const excluded = byCode(doc.types, r.except.types) || byCode(doc.classes, r.except.classes) || (r.except.patientDeposited && doc.authoredByPatient);
  return allowed && !excluded;
}

/** Documents built from every coding of every category: alone, combined, without or with another system. */
function probeDocuments(m: MatrixFile): DocumentFacts[] {
  const types = Object.values(m.categories).flatMap((c) => c.types ?? []);
  const classes = Object.values(m.categories).flatMap((c) => c.classes ?? []);
  const docs: DocumentFacts[] = [];
  for (const authoredByPatient of [false, true]) {
    docs.push({ types: [], classes: [], authoredByPatient });
    docs.push({ types: [{ system: LOINC, code: '51969-4' }], classes: [], authoredByPatient });
    for (const type of types) {
      docs.push({ types: [type], classes: [], authoredByPatient });
      docs.push({ types: [{ code: type.code }], classes: [], authoredByPatient });
      docs.push({ types: [{ system: 'urn:oid:2.16.840.1.113883.6.1', code: type.code }], classes: [], authoredByPatient });
      for (const cls of classes) docs.push({ types: [{ code: type.code }], classes: [cls], authoredByPatient });
      for (const cls of classes) docs.push({ types: [type], classes: [cls], authoredByPatient });
    }
    for (const cls of classes) {
      docs.push({ types: [], classes: [cls], authoredByPatient });
      docs.push({ types: [], classes: [{ code: cls.code }], authoredByPatient });
    }
  }
  return docs;
}

/** Every (profession, specialty) the matrix names, plus an unknown profession. */
function rulesOf(m: MatrixFile): [string, string | undefined][] {
  const rules: [string, string | undefined][] = [['99', undefined]];
  for (const [profession, entry] of Object.entries(m.professions)) {
    rules.push([profession, undefined], [profession, 'UNKNOWN']);
    for (const specialty of Object.keys(entry.specialties ?? {})) rules.push([profession, specialty]);
  }
  return rules;
}

function disagreements(m: MatrixFile): string[] {
  const docs = probeDocuments(m);
  const out: string[] = [];
  for (const [profession, specialty] of rulesOf(m)) {
    const r = readableTypes(profession, specialty);
    for (const doc of docs) {
      if (mayRead(profession, specialty, doc) !== pushedDown(r, doc)) out.push(`${profession}/${specialty ?? '-'}: ${JSON.stringify(doc)}`);
    }
  }
  return out;
}

t.test('readableTypes agrees with mayRead for every category, profession and specialty', async (t) => {
  t.same(disagreements(shipped).slice(0, 10), []);
});

t.test('readableTypes agrees with mayRead when a deny overlaps an allowed class', async (t) => {
  // A podiatrist allowed class 42 but denied discharge letters, and a nurse denied patient documents.
  const m = variant((m) => {
    m.professions[NURSE].deny = ['patient-deposited'];
    m.professions[NURSE].read = (m.professions[NURSE].read as string[]).filter((c) => c !== 'patient-deposited');
    delete m.professions[NURSE].specialties;
  });
  loadMatrix(writeMatrix(m));
  t.same(disagreements(m).slice(0, 10), []);
});

t.test('readableTypes of an optician lists the seeds/004 codings', async (t) => {
  const r = readableTypes(OPTICIAN);
  if (r.all) return t.fail('an optician does not read everything');
  const has = (list: { system: string; code: string }[], system: string, code: string): boolean => list.some((c) => c.system === system && c.code === code);
  t.ok(has(r.types, LOINC, '57833-6'));
  t.ok(has(r.types, LOINC, '78513-9'));
  t.ok(has(r.types, LOINC, '47420-5'));
  t.ok(has(r.types, LOINC, '18776-5'));
  t.ok(has(r.classes, A03, '42'));
  t.notOk(has(r.types, LOINC, '11490-0'));
  t.equal(r.patientDeposited, true);
  t.same(r.except, { types: [], classes: [], patientDeposited: false });
});

t.test('readableTypes of a podiatrist carries the denied codings as exceptions', async (t) => {
  const r = readableTypes(PODIATRIST);
  if (r.all) return t.fail('a podiatrist does not read everything');
  t.ok(r.except.types.some((c) => c.system === LOINC && c.code === '11490-0'));
  t.ok(r.except.types.some((c) => c.system === LOINC && c.code === '34112-3'));
  t.notOk(r.types.some((c) => c.code === '11490-0'));
});

t.test('readableTypes returns copies the caller cannot use to change the matrix', async (t) => {
  const r = readableTypes(OPTICIAN);
  if (r.all) return t.fail('an optician does not read everything');
  r.types.push({ system: LOINC, code: '11490-0' });
  for (const c of r.types) c.code = '11490-0';
  t.notOk(mayRead(OPTICIAN, undefined, loinc('11490-0')));
  t.ok(mayRead(OPTICIAN, undefined, loinc('57833-6')));
});

// ---------------------------------------------------------------------------------------------
// Invalid files are rejected with the path and the problem

const invalid: [string, unknown, RegExp][] = [
  ['not JSON', '{ "default": "deny", ', /not valid JSON/],
  ['a top level that is not an object', '[]', /\(top level\): must be a JSON object/],
  ['a missing default', variant((m) => delete (m as Partial<MatrixFile>).default), /default: must be "deny" or "allow", not missing/],
  ['a default that is neither deny nor allow', variant((m) => ((m as { default: string }).default = 'maybe')), /default: must be "deny" or "allow", not "maybe"/],
  ['a misspelt key', { ...shipped, defualt: 'deny' }, /\(top level\): unknown key "defualt"/],
  ['a misspelt key in a profession', variant((m) => ((m.professions[PODIATRIST] as FileEntry & { denny?: string[] }).denny = [])), /professions\.80: unknown key "denny"/],
  ['no categories', variant((m) => (m.categories = {})), /categories: must list at least one category/],
  ['a category that matches nothing', variant((m) => (m.categories['empty'] = { types: [], classes: [], description: 'x' })), /categories\.empty: matches nothing/],
  ['a category without description', variant((m) => (m.categories['x'] = { types: [{ system: LOINC, code: '1-8' }] })), /categories\.x\.description: must be a non-empty string/],
  ['a coding without system', variant((m) => (m.categories['prescription'].types = [{ code: '57833-6' } as Coding])), /categories\.prescription\.types\[0\]\.system: must be a non-empty string/],
  ['a coding whose system is not a URI', variant((m) => (m.categories['prescription'].types = [{ system: 'loinc', code: '57833-6' }])), /categories\.prescription\.types\[0\]\.system: must be an absolute URI/],
  ['a coding without code', variant((m) => (m.categories['prescription'].types = [{ system: LOINC } as Coding])), /categories\.prescription\.types\[0\]\.code: must be a non-empty string/],
  ['an unknown category in read', variant((m) => (m.professions[OPTICIAN].read = ['prescriptions'])), /professions\.28\.read: unknown category "prescriptions"/],
  ['an unknown category in deny', variant((m) => (m.professions[PODIATRIST].deny = ['hospital-report'])), /professions\.80\.deny: unknown category "hospital-report"/],
  ['a read that is neither "*" nor a list', variant((m) => ((m.professions[OPTICIAN] as { read: unknown }).read = 'all')), /professions\.28\.read: must be "\*" or a list of category names/],
  ['a profession without read', variant((m) => delete (m.professions[OPTICIAN] as Partial<FileEntry>).read), /professions\.28\.read: is required/],
  ['"*" with a deny', variant((m) => (m.professions[PHYSICIAN].deny = ['lab-report'])), /professions\.10: "read": "\*" cannot be combined with "deny"/],
  ['a category both read and denied', variant((m) => (m.professions[PODIATRIST].deny = ['prescription'])), /professions\.80: "prescription" is both read and denied/],
  ['a specialty reading what its profession denies', variant((m) => (m.professions[PODIATRIST].specialties = { X1: { display: 'x', read: ['discharge-report'] } })), /professions\.80\.specialties\.X1\.read: "discharge-report" is denied to the whole profession/],
  ['a specialty reading "*" under a profession that denies', variant((m) => (m.professions[PODIATRIST].specialties = { X1: { display: 'x', read: '*' } })), /professions\.80\.specialties\.X1: "\*" cannot be combined with "deny"/],
  ['a profession key that is not a code', variant((m) => (m.professions['10 médecin'] = { display: 'x', read: '*' })), /professions\.10 médecin: a profession key is its TRE_G15 code/],
];

for (const [what, content, message] of invalid) {
  t.test(`a file with ${what} is rejected with a clear message`, async (t) => {
    const file = writeMatrix(content);
    t.throws(() => loadMatrix(file), { message: new RegExp(`^Invalid access matrix ${escape(file)}: ${message.source}`) });
  });
}

t.test('a missing file is rejected with its path', async (t) => {
  const file = path.join(tmp, 'nope.json');
  t.throws(() => loadMatrix(file), { message: new RegExp(`^Cannot read access matrix ${escape(file)}: .*ENOENT`) });
});

t.test('a rejected file leaves the previous matrix in force', async (t) => {
  t.throws(() => loadMatrix(writeMatrix('{')));
  t.ok(mayRead(OPTICIAN, undefined, loinc('57833-6')));
  t.notOk(mayRead(PODIATRIST, undefined, loinc('11490-0')));
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
