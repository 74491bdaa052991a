// Range headers (RFC 9110 14) read against a content size: the pure part of ITI-68 retrieval.
import t from 'tap';
import { rangeOf } from '../../src/fhir/retrieve.js';

t.test('one range of bytes: first-last, first- and -suffix, cut to the content', async (t) => {
  t.same(rangeOf('bytes=0-0', 10), { start: 0, end: 0 });
  t.same(rangeOf('bytes=2-5', 10), { start: 2, end: 5 });
  t.same(rangeOf('bytes=2-', 10), { start: 2, end: 9 });
  t.same(rangeOf('bytes=-3', 10), { start: 7, end: 9 });
  t.same(rangeOf('bytes=-30', 10), { start: 0, end: 9 }, 'a suffix longer than the content is all of it');
  t.same(rangeOf('bytes=8-400', 10), { start: 8, end: 9 }, 'an end past the content is cut');
  t.same(rangeOf('Bytes = 1-1', 10), { start: 1, end: 1 }, 'unit case and spaces');
});

t.test('nothing of the content: unsatisfiable (416)', async (t) => {
  t.equal(rangeOf('bytes=10-', 10), 'unsatisfiable');
  t.equal(rangeOf('bytes=10-20', 10), 'unsatisfiable');
  t.equal(rangeOf('bytes=-0', 10), 'unsatisfiable');
  t.equal(rangeOf('bytes=0-', 0), 'unsatisfiable', 'an empty content has no byte to give');
  t.equal(rangeOf('bytes=-5', 0), 'unsatisfiable');
});

t.test('several ranges, other units and malformed values: the whole content', async (t) => {
  for (const header of ['bytes=0-1,4-5', 'items=0-1', 'bytes=5-2', 'bytes=-', 'bytes=a-b', 'bytes=1-2-3', 'bytes=', '0-5']) {
    t.equal(rangeOf(header, 10), 'all', header);
  }
});
