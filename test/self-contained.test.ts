// The repository is self-contained: nothing the tests, the server, the scripts or CI run reads
// data from beside the checkout (a fresh clone has no such folder). The official examples the
// tests need are committed in test/fixtures/data, each set named in its PROVENANCE.md.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { FIXTURE_DATA } from './fixtures/data-paths.js';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Written in pieces so that this file does not name them itself.
const SHARED = 'shared';
const NEEDLES = [`../${SHARED}`, `..\\${SHARED}`, `/work/${SHARED}`];

/** The needles a text contains, with the 1-based line of each occurrence. */
function references(text: string): { line: number; needle: string }[] {
  const found: { line: number; needle: string }[] = [];
  text.split('\n').forEach((content, i) => {
    for (const needle of NEEDLES) if (content.includes(needle)) found.push({ line: i + 1, needle });
  });
  return found;
}

/** Every file under a folder of the project, but node_modules and the fixture data sets' resources. */
function filesUnder(relative: string): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') walk(full);
      } else if (entry.isFile()) {
        // The official examples themselves are data, not code that reads files; PROVENANCE.md is scanned.
        if (full.startsWith(FIXTURE_DATA + path.sep) && /\.(json|ndjson)$/.test(entry.name)) continue;
        files.push(full);
      }
    }
  };
  walk(path.join(PROJECT, relative));
  return files;
}

t.test('the scan recognises a reference to data beside the checkout', async (t) => {
  t.same(references(`const a = 1;\nconst dir = '../../${SHARED}/data/x';`), [{ line: 2, needle: `../${SHARED}` }]);
  t.same(references(`readFileSync('/work/${SHARED}/data/examples')`), [{ line: 1, needle: `/work/${SHARED}` }]);
  t.same(references(`path.join(PROJECT, 'test/fixtures/data')`), []);
});

t.test('test/, src/, scripts/, .ci/ and package.json never point at data beside the checkout', async (t) => {
  const files = [...['test', 'src', 'scripts', '.ci'].flatMap(filesUnder), path.join(PROJECT, 'package.json')];
  t.ok(files.length > 100, `${files.length} files scanned`);
  t.ok(files.includes(path.join(PROJECT, 'test/helpers.ts')), 'test/helpers.ts is among them');
  const offending: string[] = [];
  for (const file of files) {
    for (const { line, needle } of references(fs.readFileSync(file, 'utf8'))) offending.push(`${path.relative(PROJECT, file)}:${line}: ${needle}`);
  }
  t.same(offending, [], 'copy the data into test/fixtures/data (with its provenance) and read it there');
});

t.test('every fixture data set is described in test/fixtures/data/PROVENANCE.md', async (t) => {
  const provenance = fs.readFileSync(path.join(FIXTURE_DATA, 'PROVENANCE.md'), 'utf8');
  const sets = fs.readdirSync(FIXTURE_DATA, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  t.ok(sets.length >= 5, `${sets.length} sets: ${sets.join(', ')}`);
  for (const set of sets) t.ok(provenance.includes(`## ${set} `), `${set} has its section`);
});
