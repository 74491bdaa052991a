import { testServer, fhir } from './test/helpers.js';
const s = await testServer();
await fhir(s.app, 'PUT', 'Patient/p1', { resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/gp' }] });
for (let i = 0; i < 50; i++) await fhir(s.app, 'PUT', `DocumentReference/d${i}`, { resourceType: 'DocumentReference', id: `d${i}`, status: 'current', type: { coding: [{ system: 'http://loinc.org', code: '57833-6' }] }, subject: { reference: 'Patient/p1' }, content: [{ attachment: { contentType: 'application/pdf' } }] });
const tok = { authorization: `Bearer ${await s.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' })}` };
const t0 = performance.now();
await Promise.all(Array.from({ length: 10 }, async (_, k) => { for (let i = 0; i < 300; i++) await fhir(s.app, 'GET', `DocumentReference/d${(i + k) % 50}`, undefined, tok); }));
console.log('3000 reads ms', performance.now() - t0);
await s.close();
