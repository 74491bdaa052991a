// policy/matrix: the access matrix (profiles/access-matrix.json): which document types, and which
// types of the medical profile (PROFILE_TYPES), each profession and specialty may read. Data, not code.
//
// The file is read and validated once (on first use, or by loadMatrix at start-up); an operator
// changes the rules by editing the file and restarting. Shape and rules: docs/access-matrix.md.
// Pure lookups after that: no I/O, no knowledge of FHIR resources beyond the codings the caller
// extracts (DocumentReference.type and .category) and whether the patient authored the document,
// or the resource type of an entry of the medical profile.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The default file, resolved from this module so it works from src/policy and dist/policy. */
export const MATRIX_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../profiles/access-matrix.json');

/**
 * The resource types of the medical profile (docs/profile.md) the matrix governs as a whole: a
 * category lists them in `resourceTypes`, and a profession reads a resource of one of these types
 * when a category it reads lists the type ('*' reads them all). A type no category lists is
 * readable only with '*', as a document type in no category is.
 */
export const PROFILE_TYPES: readonly string[] = ['Observation', 'AllergyIntolerance', 'MedicationStatement', 'Immunization', 'Condition', 'FamilyMemberHistory'];

/** Whether the matrix governs resources of this type (besides DocumentReference). */
export function isProfileType(type: string): boolean {
  return PROFILE_TYPES.includes(type);
}

/** What the matrix needs to know about an entry of the medical profile: its type. */
export interface ProfileFacts {
  resourceType: string;
}

/** What the matrix needs to know about a document. */
export interface DocumentFacts {
  /** DocumentReference.type codings. */
  types: { system?: string; code?: string }[];
  /** DocumentReference.category codings (the XDS classCode). */
  classes: { system?: string; code?: string }[];
  /** The patient (or the patient's representative) deposited the document. */
  authoredByPatient: boolean;
}

export interface CodingKey {
  system: string;
  code: string;
}

/** Codings whose documents a search must leave out even when they match the allow-list. */
export interface ReadableExceptions {
  types: CodingKey[];
  classes: CodingKey[];
  /** Leave out every document the patient deposited. */
  patientDeposited: boolean;
}

/**
 * What a profession may read, as data a search engine can push into its query.
 *
 * `all: true`: every document (the matrix never combines "*" with a deny, so there is nothing
 * to leave out). Otherwise a document is readable when
 *   (a type coding is in `types` OR a class coding is in `classes`
 *      OR (`patientDeposited` AND the patient authored it))
 *   AND NOT (a type coding is in `except.types` OR a class coding is in `except.classes`
 *      OR (`except.patientDeposited` AND the patient authored it)).
 * Allow-list codings match on system and code. Exception codings match on the code alone,
 * whatever the document coding's system (none, or an OID instead of the URI): a producer that
 * spells the system differently cannot slip a denied document past the rule.
 * Empty lists and false flags mean "nothing": a profession with no rights gets a query that
 * matches no document.
 * `resourceTypes`: the profile types (PROFILE_TYPES) the profession reads; a profile type not in
 * it is read by nobody of the profession (but the rules of docs/consent.md say more).
 */
export type ReadableTypes =
  | { all: true }
  | { all: false; types: CodingKey[]; classes: CodingKey[]; patientDeposited: boolean; except: ReadableExceptions; resourceTypes: string[] };

/** A summary of the loaded matrix, for start-up logs. */
export interface MatrixSummary {
  file: string;
  default: 'deny' | 'allow';
  categories: string[];
  professions: string[];
}

// ---------------------------------------------------------------------------------------------
// The compiled matrix

interface Category {
  name: string;
  /** Profile types (PROFILE_TYPES) the category holds as a whole. */
  resourceTypes: string[];
  types: CodingKey[];
  classes: CodingKey[];
  authoredByPatient: boolean;
  typeKeys: Set<string>;
  classKeys: Set<string>;
  typeCodes: Set<string>;
  classCodes: Set<string>;
}

interface Rule {
  all: boolean;
  read: Category[];
  deny: Category[];
}

interface Profession {
  display: string;
  rule: Rule;
  specialties: Map<string, Rule>;
}

interface Matrix {
  file: string;
  default: 'deny' | 'allow';
  defaultRule: Rule;
  categories: Map<string, Category>;
  professions: Map<string, Profession>;
}

let active: Matrix | undefined;

function current(): Matrix {
  active ??= compile(MATRIX_FILE);
  return active;
}

/** The name of a profession (TRE_G15 code) as the matrix gives it, e.g. "Médecin"; undefined when it has none. */
export function professionDisplay(profession: string): string | undefined {
  return current().professions.get(profession)?.display;
}

/**
 * Read and validate a matrix file and make it the one mayRead and readableTypes use. Throws an
 * Error naming the file and the problem when it is invalid, and then keeps the previous matrix.
 * Call it at start-up to fail fast; without a call, the default file is loaded on first use.
 */
export function loadMatrix(file: string = MATRIX_FILE): MatrixSummary {
  const matrix = compile(path.resolve(file));
  active = matrix;
  return { file: matrix.file, default: matrix.default, categories: [...matrix.categories.keys()], professions: [...matrix.professions.keys()] };
}

function ruleFor(matrix: Matrix, profession: string, specialty: string | undefined): Rule {
  const entry = matrix.professions.get(profession);
  if (!entry) return matrix.defaultRule;
  return (specialty !== undefined ? entry.specialties.get(specialty) : undefined) ?? entry.rule;
}

const keyOf = (system: string, code: string): string => `${system}|${code}`;

const isProfileFacts = (facts: DocumentFacts | ProfileFacts): facts is ProfileFacts => 'resourceType' in facts;

/** Allow side: a coding matches on system and code; a profile entry on its type. */
function allows(category: Category, facts: DocumentFacts | ProfileFacts): boolean {
  if (isProfileFacts(facts)) return category.resourceTypes.includes(facts.resourceType);
  const doc = facts;
  if (category.authoredByPatient && doc.authoredByPatient) return true;
  const hit = (c: { system?: string; code?: string }, keys: Set<string>): boolean => !!c.system && !!c.code && keys.has(keyOf(c.system, c.code));
  return doc.types.some((c) => hit(c, category.typeKeys)) || doc.classes.some((c) => hit(c, category.classKeys));
}

/**
 * Deny side: fails closed, a coding matches on its code whatever its system, so a discharge letter
 * typed without a system, or with LOINC's OID (urn:oid:2.16.840.1.113883.6.1) instead of
 * http://loinc.org, is still denied.
 */
function denies(category: Category, facts: DocumentFacts | ProfileFacts): boolean {
  if (isProfileFacts(facts)) return category.resourceTypes.includes(facts.resourceType);
  const doc = facts;
  if (category.authoredByPatient && doc.authoredByPatient) return true;
  return doc.types.some((c) => !!c.code && category.typeCodes.has(c.code)) || doc.classes.some((c) => !!c.code && category.classCodes.has(c.code));
}

/**
 * Whether a professional of `profession` (TRE_G15 code) and `specialty` (TRE_R38 code) may read a
 * document, or an entry of the medical profile of a type (ProfileFacts), by the matrix alone
 * (masking, blocking and consent are decided elsewhere). Deny categories beat read categories.
 */
export function mayRead(profession: string, specialty: string | undefined, doc: DocumentFacts | ProfileFacts): boolean {
  const rule = ruleFor(current(), profession, specialty);
  if (rule.deny.some((c) => denies(c, doc))) return false;
  if (rule.all) return true;
  return rule.read.some((c) => allows(c, doc));
}

/** The rule of mayRead as an allow-list of codings plus exceptions, for a search to push down. */
export function readableTypes(profession: string, specialty?: string): ReadableTypes {
  const rule = ruleFor(current(), profession, specialty);
  if (rule.all) return { all: true };
  const except: ReadableExceptions = {
    types: unique(rule.deny.flatMap((c) => c.types)),
    classes: unique(rule.deny.flatMap((c) => c.classes)),
    patientDeposited: rule.deny.some((c) => c.authoredByPatient),
  };
  // Denied codes are dropped from the allow-list too, so a query that honours the allow-list
  // alone is already as close to mayRead as a plain list can be.
  const deniedTypes = new Set(except.types.map((c) => c.code));
  const deniedClasses = new Set(except.classes.map((c) => c.code));
  return {
    all: false,
    types: unique(rule.read.flatMap((c) => c.types)).filter((c) => !deniedTypes.has(c.code)),
    classes: unique(rule.read.flatMap((c) => c.classes)).filter((c) => !deniedClasses.has(c.code)),
    patientDeposited: rule.read.some((c) => c.authoredByPatient) && !except.patientDeposited,
    except,
    resourceTypes: PROFILE_TYPES.filter((type) => mayRead(profession, specialty, { resourceType: type })),
  };
}

/** Distinct codings, as fresh objects (callers may not reach the compiled matrix). */
function unique(codings: CodingKey[]): CodingKey[] {
  const seen = new Map<string, CodingKey>();
  for (const c of codings) if (!seen.has(keyOf(c.system, c.code))) seen.set(keyOf(c.system, c.code), { system: c.system, code: c.code });
  return [...seen.values()];
}

// ---------------------------------------------------------------------------------------------
// Reading and validating the file

const TOP_KEYS = ['description', 'sources', 'default', 'defaultReason', 'professionSystem', 'specialtySystem', 'categories', 'professions'];
const CATEGORY_KEYS = ['description', 'resourceTypes', 'types', 'classes', 'authoredByPatient'];
const CODING_KEYS = ['system', 'code', 'display', 'note'];
const PROFESSION_KEYS = ['display', 'read', 'deny', 'reason', 'specialties'];
const SPECIALTY_KEYS = ['display', 'read', 'deny', 'reason'];
const CATEGORY_NAME = /^[a-z][a-z0-9-]{0,63}$/;
/** The codes a token may carry for a profession or specialty (as the token CLI accepts them). */
const CODE = /^[A-Za-z0-9.-]{1,32}$/;

class Checker {
  constructor(readonly file: string) {}

  fail(where: string, problem: string): never {
    throw new Error(`Invalid access matrix ${this.file}: ${where}: ${problem}`);
  }

  /** A JSON object; with `allowed`, any other key is an error (catches typos such as "denny"). */
  object(value: unknown, where: string, allowed?: string[]): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(where, 'must be a JSON object');
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (allowed && !allowed.includes(key)) this.fail(where, `unknown key "${key}" (allowed: ${allowed.join(', ')})`);
    }
    return record;
  }

  string(value: unknown, where: string): string {
    if (typeof value !== 'string' || value.trim() === '') this.fail(where, 'must be a non-empty string');
    return value;
  }

  optionalString(value: unknown, where: string): void {
    if (value !== undefined) this.string(value, where);
  }

  array(value: unknown, where: string): unknown[] {
    if (!Array.isArray(value)) this.fail(where, 'must be an array');
    return value;
  }
}

function compile(file: string): Matrix {
  const check: Checker = new Checker(file); // annotated, so that check.fail() (never) narrows
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read access matrix ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`Invalid access matrix ${file}: not valid JSON: ${(err as Error).message}`);
  }

  const top = check.object(raw, '(top level)', TOP_KEYS);
  for (const key of ['description', 'defaultReason', 'professionSystem', 'specialtySystem']) check.optionalString(top[key], key);
  if (top.sources !== undefined) check.array(top.sources, 'sources').forEach((s, i) => check.string(s, `sources[${i}]`));
  const fallback = top.default;
  if (fallback !== 'deny' && fallback !== 'allow') check.fail('default', `must be "deny" or "allow", not ${JSON.stringify(fallback) ?? 'missing'}`);

  const categories = new Map<string, Category>();
  const rawCategories = check.object(top.categories, 'categories');
  if (Object.keys(rawCategories).length === 0) check.fail('categories', 'must list at least one category');
  for (const [name, value] of Object.entries(rawCategories)) {
    const where = `categories.${name}`;
    if (!CATEGORY_NAME.test(name)) check.fail(where, 'a category name is lower-case letters, digits and "-", starting with a letter');
    categories.set(name, compileCategory(check, where, name, value));
  }

  const professions = new Map<string, Profession>();
  const rawProfessions = check.object(top.professions, 'professions');
  for (const [code, value] of Object.entries(rawProfessions)) {
    const where = `professions.${code}`;
    if (!CODE.test(code)) check.fail(where, 'a profession key is its TRE_G15 code (letters, digits, "." or "-")');
    const entry = check.object(value, where, PROFESSION_KEYS);
    check.string(entry.display, `${where}.display`);
    check.optionalString(entry.reason, `${where}.reason`);
    if (entry.read === undefined) check.fail(`${where}.read`, 'is required: "*" or a list of categories');
    const own = compileRule(check, where, entry.read, entry.deny, categories);

    const specialties = new Map<string, Rule>();
    if (entry.specialties !== undefined) {
      const rawSpecialties = check.object(entry.specialties, `${where}.specialties`);
      for (const [specialty, specValue] of Object.entries(rawSpecialties)) {
        const at = `${where}.specialties.${specialty}`;
        if (!CODE.test(specialty)) check.fail(at, 'a specialty key is its TRE_R38 code (letters, digits, "." or "-")');
        const spec = check.object(specValue, at, SPECIALTY_KEYS);
        check.string(spec.display, `${at}.display`);
        check.optionalString(spec.reason, `${at}.reason`);
        if (spec.read === undefined && spec.deny === undefined) check.fail(at, 'needs "read" or "deny" (a specialty adds to its profession)');
        const extra = compileRule(check, at, spec.read ?? [], spec.deny, categories);
        for (const c of extra.read) {
          if (own.deny.includes(c)) check.fail(`${at}.read`, `"${c.name}" is denied to the whole profession, and deny beats read: remove one of them`);
        }
        const merged: Rule = { all: own.all || extra.all, read: [...new Set([...own.read, ...extra.read])], deny: [...new Set([...own.deny, ...extra.deny])] };
        if (merged.all && merged.deny.length > 0) check.fail(at, '"*" cannot be combined with "deny" (list the categories to read instead)');
        specialties.set(specialty, merged);
      }
    }
    professions.set(code, { display: entry.display as string, rule: own, specialties });
  }

  const defaultRule: Rule = { all: fallback === 'allow', read: [], deny: [] };
  return { file, default: fallback, defaultRule, categories, professions };
}

function compileCategory(check: Checker, where: string, name: string, value: unknown): Category {
  const entry = check.object(value, where, CATEGORY_KEYS);
  check.string(entry.description, `${where}.description`);
  if (entry.authoredByPatient !== undefined && typeof entry.authoredByPatient !== 'boolean') check.fail(`${where}.authoredByPatient`, 'must be true or false');
  const types = codings(check, `${where}.types`, entry.types);
  const classes = codings(check, `${where}.classes`, entry.classes);
  const authoredByPatient = entry.authoredByPatient === true;
  const resourceTypes = entry.resourceTypes === undefined ? [] : check.array(entry.resourceTypes, `${where}.resourceTypes`).map((type, i) => {
    if (typeof type !== 'string' || !isProfileType(type)) check.fail(`${where}.resourceTypes[${i}]`, `must be one of the profile types (${PROFILE_TYPES.join(', ')}), not ${JSON.stringify(type)}`);
    return type;
  });
  if (resourceTypes.length > 0 && (types.length > 0 || classes.length > 0 || authoredByPatient)) check.fail(where, 'a category holds either profile types ("resourceTypes") or documents (types, classes, authoredByPatient), not both');
  if (types.length === 0 && classes.length === 0 && !authoredByPatient && resourceTypes.length === 0) check.fail(where, 'matches nothing: list resourceTypes, types, classes, or set "authoredByPatient": true');
  return {
    name,
    resourceTypes,
    types,
    classes,
    authoredByPatient,
    typeKeys: new Set(types.map((c) => keyOf(c.system, c.code))),
    classKeys: new Set(classes.map((c) => keyOf(c.system, c.code))),
    typeCodes: new Set(types.map((c) => c.code)),
    classCodes: new Set(classes.map((c) => c.code)),
  };
}

function codings(check: Checker, where: string, value: unknown): CodingKey[] {
  if (value === undefined) return [];
  return check.array(value, where).map((item, i) => {
    const at = `${where}[${i}]`;
    const coding = check.object(item, at, CODING_KEYS);
    const system = check.string(coding.system, `${at}.system`);
    const code = check.string(coding.code, `${at}.code`);
    if (!/^[a-z][a-z0-9+.-]*:/i.test(system)) check.fail(`${at}.system`, `must be an absolute URI (e.g. http://loinc.org), not "${system}"`);
    if (code !== code.trim()) check.fail(`${at}.code`, `has leading or trailing spaces: "${code}"`);
    check.optionalString(coding.display, `${at}.display`);
    check.optionalString(coding.note, `${at}.note`);
    return { system, code };
  });
}

function compileRule(check: Checker, where: string, read: unknown, deny: unknown, categories: Map<string, Category>): Rule {
  const known = (): string => [...categories.keys()].join(', ');
  const names = (value: unknown, at: string): Category[] => {
    if (!Array.isArray(value)) check.fail(at, at.endsWith('.read') ? 'must be "*" or a list of category names' : 'must be a list of category names');
    return value.map((name: unknown, i) => {
      if (typeof name !== 'string') check.fail(`${at}[${i}]`, 'must be a category name');
      const category = categories.get(name);
      if (!category) check.fail(at, `unknown category "${name}" (known: ${known()})`);
      return category;
    });
  };
  const all = read === '*';
  const readList = all ? [] : names(read, `${where}.read`);
  const denyList = deny === undefined ? [] : names(deny, `${where}.deny`);
  if (all && denyList.length > 0) check.fail(where, '"read": "*" cannot be combined with "deny" (list the categories to read instead)');
  for (const c of readList) {
    if (denyList.includes(c)) check.fail(where, `"${c.name}" is both read and denied`);
  }
  return { all, read: [...new Set(readList)], deny: [...new Set(denyList)] };
}
