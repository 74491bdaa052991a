// ITI-65 Provide Document Bundle through the real HTTP API: the official IHE MHD and ANS PDSm
// examples, then one test per rule the Document Recipient enforces. A rejected Bundle stores nothing.
import crypto from 'node:crypto';
import t, { type Test } from 'tap';
import type { Attachment, Binary, Bundle, DocumentReference, List, OperationOutcome } from '@medplum/fhirtypes';
import { bearer, fhir, json, testServer } from '../helpers.js';
import { ANS_INS, iheBundle, INS_SYSTEM, load, PDSM, PDSM4DMP, provideBundle, seedExamples, withCustodian } from './fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
await seedExamples(app);

const push = (bundle: unknown) => fhir(app, 'POST', '', bundle);
const bearerOf = () => bearer(app);
const outcome = (res: { body: string }) => json<OperationOutcome>(res);
const count = async (type: string) => (json<Bundle>(await fhir(app, 'GET', `${type}?_summary=count`)).total ?? -1);
const stored = async () => ({ documents: await count('DocumentReference'), binaries: await count('Binary'), lists: await count('List') });
const locationOf = (bundle: Bundle, index: number) => (bundle.entry?.[index]?.response?.location ?? '').replace(/\/_history\/\d+$/, '');

/** Pushes and expects a rejection naming the entry and the rule, with nothing stored. */
async function rejected(t: Test, bundle: unknown, status: number, pattern: RegExp): Promise<void> {
  const before = await stored();
  const res = await push(bundle);
  t.equal(res.statusCode, status, pattern.source);
  t.match(outcome(res).issue?.[0]?.diagnostics, pattern);
  t.same(await stored(), before, 'nothing is stored');
}

t.test('official IHE MHD comprehensive Provide Document Bundles are accepted', async (t) => {
  // The IHE examples all reuse one document uniqueId: each is pushed to a recipient of its own.
  for (const name of ['ex-comprehensiveProvideDocumentBundleSimple', 'ex-comprehensiveProvideDocumentBundleComplete', 'ex-unContainedComprehensiveProvideDocumentBundleComplete']) {
    const recipient = await testServer();
    t.teardown(() => recipient.close());
    await seedExamples(recipient.app);
    const bundle = iheBundle(name);
    const res = await fhir(recipient.app, 'POST', '', bundle);
    t.equal(res.statusCode, 200, name);
    const response = json<Bundle>(res);
    t.equal(response.type, 'transaction-response');
    t.ok(response.entry?.every((e) => e.response?.status === '201 Created'), `${name}: every entry created`);
    const documents = bundle.entry?.flatMap((e, i) => (e.resource?.resourceType === 'DocumentReference' ? [locationOf(response, i)] : [])) ?? [];
    for (const location of documents) {
      const document = json<DocumentReference>(await fhir(recipient.app, 'GET', location.replace(/^.*\/fhir\//, '')));
      t.equal(document.subject?.reference, 'Patient/ex-patient', `${name}: filed in the patient's record`);
      const url = document.content[0].attachment.url ?? '';
      t.match(url, /^Binary\//, `${name}: the attachment points at the stored Binary`);
      const binary = json<Binary>(await fhir(recipient.app, 'GET', url, undefined, { accept: 'application/fhir+json' }));
      t.equal(binary.securityContext?.reference, location.replace(/^.*\/fhir\//, ''), `${name}: the Binary is as sensitive as its document`);
      const bytes = Buffer.from(binary.data ?? '', 'base64');
      t.equal(document.content[0].attachment.hash, crypto.createHash('sha1').update(bytes).digest('base64'));
    }
    const appended = json<DocumentReference>(await fhir(recipient.app, 'GET', 'DocumentReference/ex-DocumentReferenceComprehensive'));
    t.equal(appended.status, 'current', `${name}: an appended document stays current`);
  }
});

t.test('a document uniqueId is provided once: in the Bundle, and across pushes', async (t) => {
  // The IHE Multiple example gives its two documents the same uniqueId.
  await rejected(t, iheBundle('ex-comprehensiveProvideDocumentBundleMultiple'), 422, /^Bundle\.entry\[2\]: masterIdentifier .* is also the uniqueId of Bundle\.entry\[1\].*rule unique-id/);
  const first = await push(iheBundle('ex-comprehensiveProvideDocumentBundleSimple'));
  t.equal(first.statusCode, 200);
  // A source retrying a push it believes lost learns that it arrived; nothing is duplicated.
  await rejected(t, iheBundle('ex-comprehensiveProvideDocumentBundleSimple'), 422, /^Bundle\.entry\[1\]: a document with uniqueId urn:oid:1\.2\.840\.113556\.1\.8000\.2554\.53432\.348\.12973\.17740\.34205\.4355\.50220\.62012 was already provided.*rule unique-id/);
});

t.test('the ANS PDSm-for-DMP examples are refused as published: PDSm 3.1.1 requires a custodian they leave out', async (t) => {
  for (const file of ['Bundle-example-td2-iti65-lot-soumission.json', 'Bundle-example-td2-1-remplacement.json']) {
    await rejected(t, load<Bundle>(PDSM4DMP, file), 422, /DocumentReference\.custodian: minimum 1 required by pdsm-comprehensive-document-reference/);
  }
});

t.test('the ANS PDSm-for-DMP submission (with its custodian) finds the patient by INS through a conditional reference', async (t) => {
  const res = await push(withCustodian(load<Bundle>(PDSM4DMP, 'Bundle-example-td2-iti65-lot-soumission.json')));
  t.equal(res.statusCode, 200, res.body.slice(0, 400));
  const response = json<Bundle>(res);
  const document = json<DocumentReference>(await fhir(app, 'GET', locationOf(response, 1).replace(/^.*\/fhir\//, '')));
  t.equal(document.subject?.reference, 'Patient/ans-ins-patient');
  const found = json<Bundle>(await fhir(app, 'GET', `DocumentReference?patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${ANS_INS}`)}`));
  t.ok(found.entry?.some((e) => e.resource?.id === document.id), 'ITI-67 finds it by the patient\'s INS');
});

t.test('the ANS replacement (with its custodian) supersedes the replaced document in the same transaction', async (t) => {
  const res = await push(withCustodian(load<Bundle>(PDSM4DMP, 'Bundle-example-td2-1-remplacement.json')));
  t.equal(res.statusCode, 200, res.body.slice(0, 400));
  t.equal(json<DocumentReference>(await fhir(app, 'GET', 'DocumentReference/doc-x-id')).status, 'superseded');
});

t.test('official examples that break a rule are rejected, naming the entry and the rule', async (t) => {
  // The IHE replace example declares 24 bytes for a 23-byte Binary.
  await rejected(t, iheBundle('ex-comprehensiveProvideDocumentBundleReplace'), 422, /^Bundle\.entry\[2\]: attachment\.size is 24 but the document has 23 bytes .*rule attachment-size/);
  // The ANS PDSm replace example's hash is not the SHA-1 of its Binary.
  await rejected(t, load(PDSM, 'examples-branch-add-exemples-iti65/Bundle-bundle-exemple-comprehensiveprovidedocument-replace.json'), 422, /^Bundle\.entry\[1\]: attachment\.hash .* is not the SHA-1 .*rule attachment-hash/);
  // The IHE minimal example registers its patient in the same Bundle: not a patient Carnet knows.
  await rejected(t, iheBundle('ex-minimalProvideDocumentBundleSimple'), 422, /^Bundle\.entry\[1\]: subject Patient\/.* is created by this Bundle.*rule subject-known/);
  await rejected(t, iheBundle('ex-minimalProvideDocumentBundleSimpleContained'), 422, /^Bundle\.entry\[1\]: the document has no subject.*rule subject-required/);
  await rejected(t, iheBundle('ex-comprehensiveProvideDocumentBundleDocument'), 422, /^Bundle\.entry\[1\]: subject "http:\/\/example\.org\/fhir\/Patient\/fdoc-patient" is not a reference to a Patient of this server/);
  // A PUT to a type without search criteria is not a FHIR conditional update.
  await rejected(t, iheBundle('ex-ProvideDocumentBundle-addToFolder'), 400, /^Bundle\.entry\[2\]: Conditional criteria "" select nothing/);
});

// A minimal valid Provide Document Bundle for the rule tests.
function provide(options: { bytes?: Buffer; size?: number; hash?: string; patient?: string } = {}) {
  const bytes = options.bytes ?? Buffer.from('%PDF-1.4 compte rendu');
  const attachment: Attachment = { contentType: 'application/pdf' };
  if (options.size !== undefined) attachment.size = options.size;
  if (options.hash !== undefined) attachment.hash = options.hash;
  return provideBundle(options.patient ?? 'Patient/ex-patient', { resourceType: 'DocumentReference', status: 'current', content: [{ attachment }] }, bytes);
}
const documentOf = (bundle: ReturnType<typeof provide>) => bundle.entry[1].resource as DocumentReference;
const setOf = (bundle: ReturnType<typeof provide>) => bundle.entry[0].resource as List;

t.test('size and hash left out by the source are completed by the recipient', async (t) => {
  const bytes = Buffer.from('%PDF-1.4 lettre de liaison');
  const res = await push(provide({ bytes }));
  t.equal(res.statusCode, 200);
  const document = json<DocumentReference>(await fhir(app, 'GET', locationOf(json<Bundle>(res), 1).replace(/^.*\/fhir\//, '')));
  t.equal(document.content[0].attachment.size, bytes.length);
  t.equal(document.content[0].attachment.hash, crypto.createHash('sha1').update(bytes).digest('base64'));
});

t.test('attachment size and hash must match the bytes', async (t) => {
  await rejected(t, provide({ size: 3 }), 422, /^Bundle\.entry\[1\]: attachment\.size is 3 .*rule attachment-size/);
  await rejected(t, provide({ hash: crypto.createHash('sha1').update('other').digest('base64') }), 422, /rule attachment-hash/);
  const res = await rejectedExpression(provide({ size: 3 }));
  t.same(res, ['Bundle.entry[1].resource.content[0].attachment.size']);
});

async function rejectedExpression(bundle: unknown): Promise<string[] | undefined> {
  return outcome(await push(bundle)).issue?.[0]?.expression;
}

t.test('the subject must be a patient known to Carnet, with an open record', async (t) => {
  await rejected(t, provide({ patient: 'Patient/nobody' }), 422, /subject Patient\/nobody is not a patient known to Carnet.*rule subject-known/);
  await rejected(t, provide({ patient: 'Organization/ex-organization' }), 422, /rule subject-patient/);
  await fhir(app, 'PUT', 'Patient/closed', { resourceType: 'Patient', id: 'closed', active: false });
  await rejected(t, provide({ patient: 'Patient/closed' }), 403, /account of Patient\/closed is closed/);
  const unknownIns = provide({ patient: `Patient?identifier=${INS_SYSTEM}|999999999999999` });
  await rejected(t, unknownIns, 412, /conditional reference .* matches no resource/);
});

t.test('every document of the Bundle is for the SubmissionSet\'s patient', async (t) => {
  await fhir(app, 'PUT', 'Patient/other', { resourceType: 'Patient', id: 'other' });
  const bundle = provide();
  setOf(bundle).subject = { reference: 'Patient/other' };
  await rejected(t, bundle, 422, /^Bundle\.entry\[0\]: the SubmissionSet's subject Patient\/other is not the documents' patient.*rule same-patient/);
});

t.test('exactly one SubmissionSet, listing every document', async (t) => {
  const none = provide();
  none.entry.shift();
  await rejected(t, none, 422, /exactly one SubmissionSet.*this one has 0.*rule one-submissionset/);
  const two = provide();
  two.entry.push({ ...two.entry[0], fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000009' });
  await rejected(t, two, 422, /^Bundle\.entry\[3\]: .*this one has 2/);
  const unlisted = provide();
  setOf(unlisted).entry = [];
  await rejected(t, unlisted, 422, /^Bundle\.entry\[1\]: the SubmissionSet \(Bundle\.entry\[0\]\) does not list this DocumentReference.*rule submissionset-entry/);
});

t.test('the attachment must point at bytes Carnet keeps', async (t) => {
  const bundle = provide();
  documentOf(bundle).content[0].attachment.url = 'https://elsewhere.example/doc.pdf';
  await rejected(t, bundle, 422, /attachment\.url "https:\/\/elsewhere\.example\/doc\.pdf" points at no Binary.*rule attachment-resolvable/);
});

t.test('an attachment may point at a Binary already on the server, checked the same way', async (t) => {
  const bytes = Buffer.from('%PDF-1.4 uploaded first');
  const uploaded = await app.inject({ method: 'POST', url: '/fhir/Binary', payload: bytes, headers: { ...bearerOf(), 'content-type': 'application/pdf', prefer: 'return=minimal' } });
  t.equal(uploaded.statusCode, 201);
  const binary = /Binary\/[^/]+/.exec(uploaded.headers.location as string)?.[0] ?? '';
  const pointing = (attachment: Attachment) => {
    const bundle = provide();
    bundle.entry.pop();
    documentOf(bundle).content[0].attachment = { ...documentOf(bundle).content[0].attachment, url: binary, ...attachment };
    return bundle;
  };
  const sha1 = crypto.createHash('sha1').update(bytes).digest('base64');
  await rejected(t, pointing({ hash: crypto.createHash('sha1').update('x').digest('base64') }), 422, /rule attachment-hash/);
  await rejected(t, pointing({ size: 1 }), 422, /rule attachment-size/);
  const missing = provide();
  missing.entry.pop();
  documentOf(missing).content[0].attachment.url = 'Binary/none';
  await rejected(t, missing, 422, /attachment\.url "Binary\/none" points at no Binary.*rule attachment-resolvable/);
  const res = await push(pointing({ size: bytes.length, hash: sha1 }));
  t.equal(res.statusCode, 200);
});

t.test('the SubmissionSet and documents meet the profiles of the metadata option the Bundle claims', async (t) => {
  const noType = provide();
  delete documentOf(noType).type;
  await rejected(t, noType, 422, /^Bundle\.entry\[1\]: DocumentReference\.type: minimum 1 required by IHE\.MHD\.(UnContained\.)?Comprehensive\.DocumentReference.*rule profile/);
  t.same(await rejectedExpression(noType), ['Bundle.entry[1].resource.type']);
  // Without a claim, the Minimal option applies: a type is not required there, a uniqueId is.
  const minimal = provide();
  delete minimal.meta;
  delete documentOf(minimal).type;
  t.equal((await push(minimal)).statusCode, 200, 'the Minimal option does not require a type');
  const noUniqueId = provide();
  delete noUniqueId.meta;
  delete documentOf(noUniqueId).masterIdentifier;
  await rejected(t, noUniqueId, 422, /^Bundle\.entry\[1\]: DocumentReference\.masterIdentifier: minimum 1 required by IHE\.MHD\.Minimal\.DocumentReference.*rule profile/);
  const noSource = provide();
  setOf(noSource).extension = [];
  await rejected(t, noSource, 422, /^Bundle\.entry\[0\]: .*IHE\.MHD\.Comprehensive\.SubmissionSet.*rule profile/);
});

t.test('a Binary may not claim another resource as its security context', async (t) => {
  const bundle = provide();
  (bundle.entry[2].resource as Binary).securityContext = { reference: 'Patient/ex-patient' };
  await rejected(t, bundle, 422, /^Bundle\.entry\[2\]: Binary\.securityContext is Patient\/ex-patient.*rule binary-context/);
});

t.test('relatesTo targets must be documents of the same patient; a replaced one must be current', async (t) => {
  const unknown = provide();
  documentOf(unknown).relatesTo = [{ code: 'appends', target: { reference: 'DocumentReference/none' } }];
  await rejected(t, unknown, 422, /relatesTo target DocumentReference\/none does not exist.*rule relates-to-known/);
  const foreign = provide();
  documentOf(foreign).relatesTo = [{ code: 'replaces', target: { reference: 'DocumentReference/doc-old' } }];
  await rejected(t, foreign, 422, /DocumentReference\/doc-old is another patient's document.*rule relates-to-patient/);
});

t.test('a replacement without the supersede patch still supersedes the old document, atomically', async (t) => {
  await fhir(app, 'PUT', 'DocumentReference/old-report', { resourceType: 'DocumentReference', id: 'old-report', status: 'current', subject: { reference: 'Patient/ex-patient' }, content: [{ attachment: { url: 'Binary/none' } }] });
  const bundle = provide();
  documentOf(bundle).relatesTo = [{ code: 'replaces', target: { reference: 'DocumentReference/old-report' } }];
  const res = await push(bundle);
  t.equal(res.statusCode, 200);
  t.equal(json<Bundle>(res).entry?.length, 3, 'the response has one entry per request entry');
  t.equal(json<DocumentReference>(await fhir(app, 'GET', 'DocumentReference/old-report')).status, 'superseded');
  const found = json<Bundle>(await fhir(app, 'GET', 'DocumentReference?_id=old-report&status=superseded'));
  t.equal(found.entry?.length, 1, 'status=superseded finds it');
  // Replacing it again: it is no longer current.
  await rejected(t, bundle, 422, /DocumentReference\/old-report is superseded: only a current document can be replaced.*rule replace-current/);
});

t.test('appends, transforms and signs are accepted and leave their target current', async (t) => {
  await fhir(app, 'PUT', 'DocumentReference/original', { resourceType: 'DocumentReference', id: 'original', status: 'current', subject: { reference: 'Patient/ex-patient' }, content: [{ attachment: { url: 'Binary/none' } }] });
  for (const code of ['appends', 'transforms', 'signs'] as const) {
    const bundle = provide({ bytes: Buffer.from(`%PDF ${code}`) });
    documentOf(bundle).relatesTo = [{ code, target: { reference: 'DocumentReference/original' } }];
    const res = await push(bundle);
    t.equal(res.statusCode, 200, code);
  }
  t.equal(json<DocumentReference>(await fhir(app, 'GET', 'DocumentReference/original')).status, 'current');
  const related = json<Bundle>(await fhir(app, 'GET', 'DocumentReference?relatesto=DocumentReference/original'));
  t.equal(related.entry?.length, 3, 'the three documents are found by what they relate to');
});

t.test('a transaction without SubmissionSet nor MHD profile is an ordinary transaction', async (t) => {
  const res = await push({ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'POST', url: 'DocumentReference' }, resource: { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { url: 'http://x/y' } }] } }] });
  t.equal(res.statusCode, 200);
});
