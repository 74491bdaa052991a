// The Binary content pointer: written in place of data, read back, never confused with a client's extensions.
import t from 'tap';
import type { Binary } from '@medplum/fhirtypes';
import { assertNoPointer, CONTENT_POINTER, pointerOf, withPointer } from '../../src/fhir/binary.js';
import { errorWith } from '../error-pattern.js';

const blob = { key: 'a'.repeat(64), size: 1234, sha1: 'L9ThxnotKPzthJ7hu3bnORuT6xI=' };

t.test('the stored form has no data and a pointer that reads back as the blob', async (t) => {
  const stored = withPointer({ resourceType: 'Binary', contentType: 'application/pdf', data: 'JVBERi0=' }, blob);
  t.equal(stored.data, undefined);
  t.same(pointerOf(stored), blob);
  t.equal(pointerOf({ resourceType: 'Binary', contentType: 'text/plain', data: 'aGk=' }), undefined, 'inline data has no pointer');
});

t.test('a client\'s own extensions on data are kept beside the pointer', async (t) => {
  const client = { url: 'http://example.org/fhir/StructureDefinition/scan-quality', valueCode: 'good' };
  const stored = withPointer({ resourceType: 'Binary', contentType: 'application/pdf', data: 'JVBERi0=', _data: { extension: [client] } } as Binary, blob);
  const extensions = (stored as { _data?: { extension?: { url: string }[] } })._data?.extension ?? [];
  t.same(extensions.map((e) => e.url), [client.url, CONTENT_POINTER]);
  t.same(pointerOf(withPointer(stored, { ...blob, size: 1 }))?.size, 1, 'a new pointer replaces the old one');
});

t.test('a client sending the pointer is refused; other extensions on data are not', async (t) => {
  const forged = withPointer({ resourceType: 'Binary', contentType: 'application/pdf' }, blob);
  t.throws(() => assertNoPointer(forged), errorWith({ status: 400 }));
  t.doesNotThrow(() => assertNoPointer({ resourceType: 'Binary', contentType: 'text/plain', _data: { extension: [{ url: 'http://example.org/x', valueString: 'y' }] } } as Binary));
  t.doesNotThrow(() => assertNoPointer({ resourceType: 'Patient' }));
});
