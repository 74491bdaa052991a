// The profile validator on the official IHE MHD, ANS PDSm and FR Core data: every example that
// claims a loaded profile conforms (but the PDSm4DMP drafts, which lack custodian), and each
// kind of rule has its failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Issue } from '../../src/base/outcome.js';
import type { Bundle, BundleEntry, CodeableConcept, Coding, DocumentReference, Identifier, List, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { loadProfiles, ProfileRegistry } from '../../src/fhir/profiles.js';
import { FIXTURE_DATA } from '../helpers.js';

const registry = loadProfiles();

const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/';
const PDSM = 'https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/';
const FR_CORE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/';
const RPPS_PROFILE = 'urn:carnet:fhir:StructureDefinition:carnet-practitioner-rpps';

const EXAMPLE_DIRS = [
  'mhd',
  'fr/pdsm/examples',
  'fr/pdsm/examples-branch-add-exemples-iti65',
  'fr/pdsm4dmp/examples',
  'fr/fr-core/examples',
  'fr/annuaire/examples',
  'fr/tracabilite-evenements/examples',
];

function read<T = Resource>(relative: string): T {
  return JSON.parse(fs.readFileSync(path.join(FIXTURE_DATA, relative), 'utf8')) as T;
}

/** Every resource (top level, Bundle entry, contained) with a meta.profile, and where it is. */
function* claiming(value: unknown, where: string): Generator<[Resource, string]> {
  if (!value || typeof value !== 'object') return;
  const resource = value as Resource;
  if (typeof resource.resourceType === 'string' && resource.meta?.profile?.length) yield [resource, where];
  for (const [key, child] of Object.entries(value)) yield* claiming(child, `${where}.${key}`);
}

const errors = (issues: Issue[]) => issues.filter((i) => i.severity !== 'warning');
const clone = <T>(value: T): T => structuredClone(value);

t.test('profiles/ loads the MHD, PDSm and FR profiles Carnet validates against', async (t) => {
  for (const url of [
    `${MHD}IHE.MHD.Minimal.DocumentReference`,
    `${MHD}IHE.MHD.Comprehensive.DocumentReference`,
    `${MHD}IHE.MHD.UnContained.Comprehensive.DocumentReference`,
    `${MHD}IHE.MHD.Minimal.SubmissionSet`,
    `${MHD}IHE.MHD.Comprehensive.SubmissionSet`,
    `${MHD}IHE.MHD.Minimal.Folder`,
    `${MHD}IHE.MHD.Comprehensive.Folder`,
    `${MHD}ihe-sourceId`,
    `${MHD}IHE.MHD.Minimal.ProvideBundle`,
    `${MHD}IHE.MHD.Comprehensive.ProvideBundle`,
    `${PDSM}pdsm-comprehensive-document-reference`,
    `${PDSM}pdsm-submissionset-comprehensive`,
    `${PDSM}pdsm-comprehensive-provide-document-bundle`,
    `${FR_CORE}fr-core-patient-ins`,
    `${FR_CORE}fr-core-practitioner`,
    RPPS_PROFILE,
  ]) {
    t.ok(registry.knownProfile(url), url);
  }
  t.ok(registry.knownProfile(`${FR_CORE}fr-core-practitioner|2.2.0`), 'a versioned canonical names the same profile');
  t.notOk(registry.knownProfile('http://example.org/StructureDefinition/nothing'));
  t.ok(
    registry.notes.some((n) => n.includes('constr-bind-type') && n.includes('no FHIRPath expression')),
    'PDSm invariants without an expression are noted as not checked',
  );
});

// PDSm 3.1.1 makes DocumentReference.custodian 1..1; the PDSm4DMP draft (0.1.0) examples and the
// work-in-progress ITI-65 replace branch of PDSm leave it out. Nothing else in them is wrong.
const MISSING_CUSTODIAN = new Set([
  'Bundle-bundle-exemple-comprehensiveprovidedocument-replace.json.entry.1.resource',
  'DocumentReference-doc-old.json',
  'Bundle-example-annexe-searchset-documentreferences.json.entry.0.resource',
  'Bundle-example-annexe-searchset-documentreferences.json.entry.1.resource',
  'Bundle-example-td2-1-remplacement.json.entry.1.resource',
  'Bundle-example-td2-iti65-lot-soumission.json.entry.1.resource',
  'DocumentReference-doc-x-id.json',
  'DocumentReference-example-annexe-docref-cda.json',
  'DocumentReference-example-annexe-docref-fhir.json',
  'DocumentReference-example-td2-iti105-publication-simplifiee.json',
  'DocumentReference-example-td3-1a-cr-consultation.json',
  'DocumentReference-example-td3-1a-fhir-document.json',
  'DocumentReference-example-td3-1a-ordonnance.json',
]);

// The PDSm Provide Bundles that carry those DocumentReferences: the entry fits no slice for that reason alone.
const BUNDLE_MISSING_CUSTODIAN = new Set([
  'Bundle-bundle-exemple-comprehensiveprovidedocument-replace.json',
  'Bundle-example-td2-1-remplacement.json',
  'Bundle-example-td2-iti65-lot-soumission.json',
]);

t.test('every official example claiming a loaded profile conforms to it', async (t) => {
  let checked = 0;
  for (const dir of EXAMPLE_DIRS) {
    for (const file of fs.readdirSync(path.join(FIXTURE_DATA, dir)).filter((f) => f.endsWith('.json'))) {
      for (const [resource, where] of claiming(read(path.join(dir, file)), file)) {
        for (const url of resource.meta!.profile!) {
          if (!registry.knownProfile(url)) continue;
          checked++;
          const found = errors(registry.validateProfile(resource, url));
          if (MISSING_CUSTODIAN.has(where)) {
            t.same(
              found.map((i) => i.expression),
              [['DocumentReference.custodian']],
              `${where}: only custodian is missing`,
            );
            t.match(found[0].diagnostics, /^DocumentReference\.custodian: minimum 1 required by pdsm-/);
          } else if (BUNDLE_MISSING_CUSTODIAN.has(where)) {
            t.same(
              found.map((i) => i.expression),
              [['Bundle.entry[1]'], ['Bundle.entry[1].resource.custodian']],
              `${where}: only its DocumentReference's custodian is missing`,
            );
          } else {
            t.same(found, [], `${where} conforms to ${url.split('/').pop()}`);
          }
        }
      }
    }
  }
  t.ok(checked >= 80, `${checked} example/profile pairs checked`);
});

/** The examples below carry identifiers (and the SubmissionSet a coded code), which the failing cases change. */
type Identified<T extends Resource> = T & { identifier: Identifier[] };
const comprehensive = read<Identified<DocumentReference>>('mhd/DocumentReference-ex-DocumentReferenceComprehensive.json');
const submissionSet = read<Identified<List> & { code: CodeableConcept & { coding: Coding[] } }>('mhd/List-ex-minimalSubmissionSet.json');

t.test('a missing required element is named with its location and the profile that requires it', async (t) => {
  const doc = clone(comprehensive);
  delete doc.masterIdentifier;
  const found = errors(registry.validateProfile(doc, `${MHD}IHE.MHD.Comprehensive.DocumentReference`));
  t.same(found, [
    {
      severity: 'error',
      code: 'required',
      diagnostics: 'DocumentReference.masterIdentifier: minimum 1 required by IHE.MHD.Minimal.DocumentReference (checking IHE.MHD.Comprehensive.DocumentReference)',
      expression: ['DocumentReference.masterIdentifier'],
    },
  ]);
});

t.test('a nested required element under an array is located by index', async (t) => {
  const doc = clone(comprehensive);
  delete doc.content[0].attachment.creation;
  const found = errors(registry.validateProfile(doc, `${MHD}IHE.MHD.Comprehensive.DocumentReference`));
  t.same(found.map((i) => i.expression), [['DocumentReference.content[0].attachment.creation']]);
});

t.test('more values than the maximum, and an element the profile forbids', async (t) => {
  const doc = clone(comprehensive);
  doc.content = [doc.content[0], doc.content[0]];
  doc.docStatus = 'final';
  const found = errors(registry.validateProfile(doc, `${MHD}IHE.MHD.Minimal.DocumentReference`));
  t.same(
    found.map((i) => i.diagnostics),
    [
      'DocumentReference.docStatus: not allowed by IHE.MHD.Minimal.DocumentReference',
      'DocumentReference.content: maximum 1 allowed by IHE.MHD.Minimal.DocumentReference, found 2',
    ],
  );
});

t.test('a value other than a fixed one (in a type profile) fails', async (t) => {
  const list = clone(submissionSet);
  list.identifier[1].system = 'urn:example:other';
  const found = errors(registry.validateProfile(list, `${MHD}IHE.MHD.Minimal.SubmissionSet`));
  t.equal(found.length, 1);
  t.same(found[0].expression, ['List.identifier[1].system']);
  t.match(found[0].diagnostics, /must be exactly "urn:ietf:rfc:3986" \(fixed by IHE\.MHD\.SubmissionSetUniqueIdIdentifier\).*type profile of List\.identifier/);
});

t.test('a value that does not match a pattern fails; a superset of it passes', async (t) => {
  const list = clone(submissionSet);
  list.mode = 'snapshot';
  const found = errors(registry.validateProfile(list, `${MHD}IHE.MHD.Minimal.SubmissionSet`));
  t.same(found.map((i) => [i.code, i.expression]), [['value', ['List.mode']]]);
  const richer = clone(submissionSet);
  richer.code.text = 'Submission set';
  richer.code.coding.push({ system: 'http://example.org', code: 'x' });
  t.same(errors(registry.validateProfile(richer, `${MHD}IHE.MHD.Minimal.SubmissionSet`)), []);
});

t.test('a code outside a required binding fails', async (t) => {
  const doc = clone(comprehensive);
  doc.status = 'entered-in-error';
  const found = errors(registry.validateProfile(doc, `${MHD}IHE.MHD.Comprehensive.DocumentReference`));
  t.same(found.map((i) => [i.code, i.expression]), [['code-invalid', ['DocumentReference.status']]]);
  t.match(found[0].diagnostics, /entered-in-error is not in the ValueSet https:\/\/profiles\.ihe\.net\/ITI\/MHD\/ValueSet\/DocumentReferenceStats/);
});

t.test('a violated FHIRPath invariant fails with its key and text', async (t) => {
  const doc = clone(comprehensive);
  doc.identifier[1].value = '0c287d32-01e3-4d87-9953-9fcc9404eb21';
  const found = errors(registry.validateProfile(doc, `${MHD}IHE.MHD.Comprehensive.DocumentReference`));
  t.same(found.map((i) => [i.code, i.expression]), [['invariant', ['DocumentReference.identifier[1].value']]]);
  t.match(found[0].diagnostics, /invariant mhd-startswithuuid of IHE\.MHD\.EntryUUID\.Identifier failed: value must start with urn:uuid:/);
});

t.test('a missing required slice fails, by its slice name', async (t) => {
  const list = clone(submissionSet);
  list.extension = [{ url: 'http://example.org/other', valueString: 'x' }];
  const found = errors(registry.validateProfile(list, `${MHD}IHE.MHD.Minimal.SubmissionSet`));
  t.same(found.map((i) => i.diagnostics), ['List.extension:sourceId: minimum 1 required by IHE.MHD.Minimal.SubmissionSet']);
});

t.test('an extension is checked against its own definition, found by url', async (t) => {
  const list = clone(submissionSet);
  list.extension = [{ url: `${MHD}ihe-sourceId`, valueString: 'urn:oid:1.2.3.4' }];
  const found = errors(registry.validateProfile(list, `${MHD}IHE.MHD.Minimal.SubmissionSet`));
  t.same(found.map((i) => i.expression), [['List.extension[0].valueString']]);
  t.match(found[0].diagnostics, /type String is not allowed by ihe-sourceId \(allowed: Identifier\)/);
});

t.test('an extension the profile does not slice is checked against its loaded definition', async (t) => {
  const doc = clone(comprehensive);
  doc.extension = [{ url: `${MHD}ihe-authorOrg`, valueString: 'Hôpital' }];
  const found = errors(registry.validateProfile(doc, `${MHD}IHE.MHD.Minimal.DocumentReference`));
  t.same(found.map((i) => i.expression), [['DocumentReference.extension[0].valueString']]);
  t.match(found[0].diagnostics, /type String is not allowed by ihe-authorOrg \(allowed: Reference\) \(type profile of DocumentReference\.extension in IHE\.MHD\.Minimal\.DocumentReference\)/);
});

t.test('wrong content in a slice fails against the slice', async (t) => {
  const practitioner = read<Resource & { identifier: { value: string }[] }>('fr/fr-core/examples/Practitioner-FRCorePractitionerExample.json');
  t.same(errors(registry.validateProfile(practitioner, RPPS_PROFILE)), [], 'the FR Core example has its RPPS number');
  const wrong = clone(practitioner);
  wrong.identifier[1].value = 'RPPS-10101201234';
  const found = errors(registry.validateProfile(wrong, RPPS_PROFILE));
  t.same(found.map((i) => [i.code, i.expression]), [['invariant', ['Practitioner.identifier[1]']]]);
  t.match(found[0].diagnostics, /invariant carnet-rpps-1 of carnet-practitioner-rpps failed: An RPPS number is 11 digits/);
  const without = clone(practitioner);
  without.identifier = [without.identifier[0]];
  t.same(errors(registry.validateProfile(without, RPPS_PROFILE)).map((i) => i.diagnostics), [
    'Practitioner.identifier:rpps: minimum 1 required by carnet-practitioner-rpps',
  ]);
});

t.test('a profile inherits its bases: PDSm adds custodian to MHD, MHD Comprehensive adds to Minimal', async (t) => {
  const pdsm = read<DocumentReference>('fr/pdsm/examples/DocumentReference-exemple-pdsm-documentreference.json');
  t.same(errors(registry.validateProfile(pdsm, `${PDSM}pdsm-comprehensive-document-reference`)), []);
  const noCustodian = clone(pdsm);
  delete noCustodian.custodian;
  delete noCustodian.securityLabel;
  const found = errors(registry.validateProfile(noCustodian, `${PDSM}pdsm-comprehensive-document-reference`));
  t.same(found.map((i) => i.expression).sort(), [['DocumentReference.custodian'], ['DocumentReference.securityLabel']]);
  const minimal = read<DocumentReference>('mhd/DocumentReference-ex-DocumentReferenceMinimal.json');
  t.same(errors(registry.validateProfile(minimal, `${MHD}IHE.MHD.Minimal.DocumentReference`)), []);
  t.ok(errors(registry.validateProfile(minimal, `${MHD}IHE.MHD.Comprehensive.DocumentReference`)).length > 0, 'the minimal example is not comprehensive');
});

t.test('contained resources claiming a loaded profile are checked too, located under contained', async (t) => {
  const pdsm = read<Resource & { contained: { identifier: { system: string }[] }[] }>('fr/pdsm/examples/DocumentReference-exemple-pdsm-documentreference.json');
  t.same(errors(registry.claimedProfileIssues(pdsm)), []);
  const rppsAt = pdsm.contained[0].identifier.findIndex((i) => i.system === 'https://rpps.esante.gouv.fr');
  t.ok(rppsAt >= 0, 'the contained author has an RPPS number');
  pdsm.contained[0].identifier[rppsAt].system = 'urn:example:rpps';
  const found = errors(registry.claimedProfileIssues(pdsm));
  t.same(found.map((i) => i.expression), [[`DocumentReference.contained[0].identifier[${rppsAt}].system`]]);
  t.match(found[0].diagnostics, /^DocumentReference\.contained\[0\]\.identifier\[\d\]\.system: must be exactly "https:\/\/rpps\.esante\.gouv\.fr" \(fixed by fr-core-practitioner\)/);
});

t.test('the FR Core patient INS checks the INS matricule', async (t) => {
  const patient = read<Resource & { identifier: { value: string; type?: unknown }[] }>('fr/fr-core/examples/Patient-FRCorePatientExample.json');
  const wrong = clone(patient);
  wrong.identifier[0].value = '12345';
  const found = errors(registry.validateProfile(wrong, `${FR_CORE}fr-core-patient-ins`));
  t.same(found.map((i) => i.expression), [['Patient.identifier[0]']]);
  t.match(found[0].diagnostics, /carnet-ins-3/);
  const none = clone(patient);
  delete none.identifier[0].type;
  t.match(errors(registry.validateProfile(none, `${FR_CORE}fr-core-patient-ins`)).map((i) => i.diagnostics), [/carnet-ins-1/]);
});

t.test('an ITI-65 Provide Bundle is checked entry by entry through its profile-discriminated slices', async (t) => {
  const url = `${MHD}IHE.MHD.Comprehensive.ProvideBundle`;
  const bundle = read<Bundle & { entry: BundleEntry[] }>(
    'mhd/Bundle-ex-comprehensiveProvideDocumentBundleSimple.json',
  );
  t.same(errors(registry.validateProfile(bundle, url)), []);

  const noSubmissionSet = clone(bundle);
  noSubmissionSet.entry = noSubmissionSet.entry.slice(1);
  t.match(errors(registry.validateProfile(noSubmissionSet, url)).map((i) => i.diagnostics), [/^Bundle\.entry:SubmissionSet: minimum 1 required by IHE\.MHD\.Minimal\.ProvideBundle/]);

  const stranger = clone(bundle);
  stranger.entry.push({ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, request: { method: 'POST', url: 'Observation' } });
  t.match(errors(registry.validateProfile(stranger, url)), [{ code: 'structure', expression: ['Bundle.entry[3]'], diagnostics: /matches none of the slices .* closes the slicing/ }]);

  const broken = clone(bundle);
  const document = broken.entry[1].resource as DocumentReference; // the example's entry 1 is its DocumentReference
  delete document.masterIdentifier;
  t.same(
    errors(registry.validateProfile(broken, url)).map((i) => i.expression),
    [['Bundle.entry[1]'], ['Bundle.entry[1].resource.masterIdentifier']],
    'the DocumentReference that fits no slice is explained against the DocumentRefs profile',
  );

  const patientByDelete = clone(bundle);
  patientByDelete.entry.push({ resource: { resourceType: 'Patient' }, request: { method: 'DELETE', url: 'Patient/1' } });
  t.match(errors(registry.validateProfile(patientByDelete, url)), [{ expression: ['Bundle.entry[3]'] }], 'a Patient entry must be GET, POST or PUT');
});

t.test('a profile of another resource type is an error, not a crash', async (t) => {
  const patient = read('fr/fr-core/examples/Patient-FRCorePatientExample.json');
  t.match(errors(registry.validateProfile(patient, `${MHD}IHE.MHD.Minimal.DocumentReference`)), [{ code: 'invalid', expression: ['Patient'] }]);
});

// Rules the loaded profiles do not use, on a small profile built for the test.
const testProfile: StructureDefinition = {
  resourceType: 'StructureDefinition',
  id: 'test-closed',
  url: 'urn:test:closed',
  name: 'TestClosed',
  status: 'active',
  kind: 'resource',
  abstract: false,
  type: 'Patient',
  baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
  derivation: 'constraint',
  differential: {
    element: [
      { id: 'Patient', path: 'Patient', constraint: [{ key: 'test-1', severity: 'warning', human: 'a patient should have a birth date', expression: 'birthDate.exists()' }] },
      { id: 'Patient.identifier', path: 'Patient.identifier', slicing: { discriminator: [{ type: 'value', path: 'system' }], rules: 'closed' } },
      { id: 'Patient.identifier:a', path: 'Patient.identifier', sliceName: 'a', min: 0, max: '1' },
      { id: 'Patient.identifier:a.system', path: 'Patient.identifier.system', fixedUri: 'urn:a' },
      { id: 'Patient.maritalStatus', path: 'Patient.maritalStatus', binding: { strength: 'required', valueSet: 'http://hl7.org/fhir/ValueSet/marital-status' } },
      { id: 'Patient.communication.language', path: 'Patient.communication.language', binding: { strength: 'required', valueSet: 'urn:test:nowhere' } },
    ],
  },
};

t.test('closed slicing, warning invariants, official ValueSets and unknown ones', async (t) => {
  const test = new ProfileRegistry([testProfile]);
  t.ok(test.notes.some((n) => n.includes('urn:test:nowhere')), 'an unknown ValueSet is noted at load');
  const patient = { resourceType: 'Patient', identifier: [{ system: 'urn:a', value: '1' }, { system: 'urn:b', value: '2' }], maritalStatus: { coding: [{ system: 'urn:x', code: 'Q' }] } } as Resource;
  const found = test.validateProfile(patient, 'urn:test:closed');
  t.same(
    found.map((i) => [i.severity, i.code, i.expression![0]]),
    [
      ['warning', 'invariant', 'Patient'],
      ['error', 'structure', 'Patient.identifier[1]'],
      ['error', 'code-invalid', 'Patient.maritalStatus'],
    ],
  );
  const fine = { resourceType: 'Patient', birthDate: '1970-01-01', identifier: [{ system: 'urn:a' }], maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] } } as Resource;
  t.same(test.validateProfile(fine, 'urn:test:closed'), []);
});

t.test('a profile whose base is missing stops the load with its name', async (t) => {
  t.throws(() => new ProfileRegistry([{ ...testProfile, baseDefinition: 'urn:test:missing' }]), /profile urn:test:closed: its baseDefinition urn:test:missing is neither an R4 definition nor a loaded profile/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-profiles-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'StructureDefinition-x.json'), '{ not json');
  t.throws(() => loadProfiles(dir), /profiles: .*StructureDefinition-x\.json is not valid JSON/);
});
