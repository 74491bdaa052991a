// accounts/population: a seeded synthetic population for the enrolment feed, as the national
// insurer would send it (docs/accounts.md): INS with a valid key, French names, birth dates over a
// century, a minor's legal representatives. Deterministic: one seed, one population, on every
// machine. Used by the enrolment bench (scripts/bench/enrol.mjs) and the tests; no real person.

import type { Parameters, Patient, RelatedPerson } from '@medplum/fhirtypes';

const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
const V3_ROLE_CODE = 'http://terminology.hl7.org/CodeSystem/v3-RoleCode';
const DAY = 86_400_000;

/** A deterministic PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The two-digit key of a 13-digit NIR: 97 - (number mod 97), zero-padded. */
export function nirKey(number: string): string {
  if (!/^\d{13}$/.test(number)) throw new Error(`a NIR has 13 digits before its key, not "${number}"`);
  return String(97 - Number(BigInt(number) % 97n)).padStart(2, '0');
}

/** Whether a 15-character INS (NIR of 13 digits and its key) has the right key. */
export function insKeyValid(ins: string): boolean {
  return /^\d{15}$/.test(ins) && nirKey(ins.slice(0, 13)) === ins.slice(13);
}

const FIRST_NAMES = {
  female: ['Marie', 'Camille', 'Léa', 'Manon', 'Chloé', 'Emma', 'Inès', 'Jeanne', 'Louise', 'Alice', 'Juliette', 'Sarah', 'Anne', 'Isabelle', 'Nathalie', 'Sophie', 'Catherine', 'Françoise', 'Monique', 'Hélène', 'Zoé', 'Lucie', 'Claire', 'Élodie', 'Margaux'],
  male: ['Jean', 'Louis', 'Lucas', 'Hugo', 'Gabriel', 'Arthur', 'Jules', 'Nathan', 'Thomas', 'Pierre', 'Nicolas', 'Julien', 'Antoine', 'Philippe', 'Michel', 'Alain', 'Bernard', 'François', 'Paul', 'Léo', 'Raphaël', 'Mathis', 'Olivier', 'Étienne', 'Yanis'],
} as const;

const LAST_NAMES = [
  'Martin', 'Bernard', 'Thomas', 'Petit', 'Robert', 'Richard', 'Durand', 'Dubois', 'Moreau', 'Laurent', 'Simon', 'Michel', 'Lefebvre', 'Leroy', 'Roux', 'David', 'Bertrand', 'Morel', 'Fournier', 'Girard',
  'Bonnet', 'Dupont', 'Lambert', 'Fontaine', 'Rousseau', 'Vincent', 'Muller', 'Lefèvre', 'Faure', 'André', 'Mercier', 'Blanc', 'Guérin', 'Boyer', 'Garnier', 'Chevalier', 'François', 'Legrand', 'Gauthier', 'Garcia',
  'Perrin', 'Robin', 'Clément', 'Morin', 'Nicolas', 'Henry', 'Roussel', 'Mathieu', 'Gautier', 'Masson', 'Marchand', 'Duval', 'Denis', 'Dumont', 'Marie', 'Lemaire', 'Noël', 'Meyer', 'Dufour', 'Meunier',
];

const CITIES = ['Paris', 'Lyon', 'Marseille', 'Toulouse', 'Nantes', 'Lille', 'Rennes', 'Bordeaux', 'Strasbourg', 'Montpellier', 'Dijon', 'Brest', 'Limoges', 'Tours', 'Amiens'];

/** One person of the feed: their Patient, and for a minor their legal representatives. */
export interface GeneratedPerson {
  patient: Patient;
  ins: string;
  representatives: RelatedPerson[];
}

export interface PopulationOptions {
  seed: number;
  /** The day the population is generated for (ages count from it), YYYY-MM-DD. */
  today: string;
  /** Share of minors (under 18), 0.2 by default. */
  minors?: number;
}

/**
 * An endless, deterministic stream of people: take as many as needed. Every INS is distinct and
 * has a valid key; its first digit is the person's sex (1 male, 2 female), then the year and
 * month of birth, a department, a commune and an order number, as a NIR.
 */
export function* population(options: PopulationOptions): Generator<GeneratedPerson> {
  const random = seededRandom(options.seed);
  const minors = options.minors ?? 0.2;
  const today = Date.parse(`${options.today}T00:00:00Z`);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  const used = new Set<string>();
  for (;;) {
    const female = random() < 0.5;
    const minor = random() < minors;
    // Ages spread evenly: minors over [0, 18) years, adults over [18, 100).
    const ageDays = minor ? int(18 * 365.25 - 1) : Math.floor(18 * 365.25) + int(Math.floor(82 * 365.25) - 2);
    const birth = new Date(today - ageDays * DAY - DAY);
    const birthDate = birth.toISOString().slice(0, 10);
    const department = String(1 + int(95)).padStart(2, '0').replace(/^20$/, '21'); // Corsica (2A/2B) left out
    let nir: string;
    do {
      nir = `${female ? 2 : 1}${birthDate.slice(2, 4)}${birthDate.slice(5, 7)}${department}${String(1 + int(999)).padStart(3, '0')}${String(1 + int(999)).padStart(3, '0')}`;
    } while (used.has(nir));
    used.add(nir);
    const ins = `${nir}${nirKey(nir)}`;
    const family = pick(LAST_NAMES);
    const patient: Patient = {
      resourceType: 'Patient',
      identifier: [{ system: INS_SYSTEM, value: ins }],
      name: [{ use: 'official', family, given: [pick(female ? FIRST_NAMES.female : FIRST_NAMES.male)] }],
      gender: female ? 'female' : 'male',
      birthDate,
      address: [{ use: 'home', city: pick(CITIES), postalCode: `${department}${String(int(1000)).padStart(3, '0')}`, country: 'FR' }],
    };
    const representatives: RelatedPerson[] = [];
    if (minor) {
      // One or two parents, or (one in twenty) a guardian.
      const roles = random() < 0.05 ? ['GUARD'] : random() < 0.6 ? ['MTH', 'FTH'] : [pick(['MTH', 'FTH'])];
      for (const role of roles) {
        const gender = role === 'MTH' ? 'female' : role === 'FTH' ? 'male' : random() < 0.5 ? 'female' : 'male';
        representatives.push({
          resourceType: 'RelatedPerson',
          patient: { reference: 'Patient/enrolled' },
          relationship: [{ coding: [{ system: V3_ROLE_CODE, code: role }] }],
          name: [{ family: role === 'GUARD' ? pick(LAST_NAMES) : family, given: [pick(gender === 'female' ? FIRST_NAMES.female : FIRST_NAMES.male)] }],
          gender,
        });
      }
    }
    yield { patient, ins, representatives };
  }
}

/** The first `count` people of a population. */
export function people(options: PopulationOptions, count: number): GeneratedPerson[] {
  const out: GeneratedPerson[] = [];
  for (const person of population(options)) {
    if (out.length === count) break;
    out.push(person);
  }
  return out;
}

/** The $enrol body of some people: each `patient` followed by its `representative` parameters. */
export function enrolParameters(batch: readonly GeneratedPerson[]): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: batch.flatMap((person) => [{ name: 'patient', resource: person.patient }, ...person.representatives.map((r) => ({ name: 'representative', resource: r }))]),
  };
}
