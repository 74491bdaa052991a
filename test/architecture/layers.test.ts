// The folders of src/ form layers without cycles: each folder imports only the folders ALLOWED
// declares for it (as Blaze's modules declare their dependencies), and the declared graph is
// acyclic, so a lower layer (base, search, store, auth, policy, audit) never imports fhir/.
// docs/architecture.md draws the same graph and says what each folder owns.
//
// Every module specifier of src/**/*.ts is read with the TypeScript parser: `import ... from`,
// `import type`, `export ... from`, side-effect imports, `import(...)` (calls and type queries)
// and `require(...)` (src/ requires JSON data with createRequire). A specifier computed at run time
// cannot be resolved and is not checked (src/store/sqlite/writer-thread.ts starts its worker that
// way, inside store/). Packages are not part of the graph.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(PROJECT, 'src');

/** The layer of the files directly in src/ (app.ts, main.ts, config.ts). */
const APP = 'app';
/** Project entries outside src/ that src/ reads as modules (data, never code) are named from the root: `/generated`. */
const OUTSIDE = '/';

type Graph = Readonly<Record<string, readonly string[]>>;

/**
 * Which folders each folder of src/ may import (besides itself). `base` is the bottom layer: every
 * folder of src/ may import it, and it imports none. Change the design here and in
 * docs/architecture.md together.
 */
const ALLOWED: Graph = {
  base: [],
  search: ['base'],
  store: ['base', 'search'],
  auth: ['base', 'store'],
  policy: ['base', 'search', 'store', 'auth'],
  audit: ['base', 'search', 'store', 'auth'],
  // Topic-based subscriptions: topics, Subscription checks, notification Bundles, the channels.
  notify: ['base', 'search', 'store', 'auth', 'audit', 'policy'],
  // The account lifecycle's scheduled work (the transitions themselves are policy/account.ts).
  accounts: ['base', 'search', 'store', 'auth', 'audit', 'policy'],
  // The reminders of the agenda: rules as data (profiles/reminders/), pure dates.
  agenda: ['base'],
  fhir: ['base', 'search', 'store', 'auth', 'policy', 'audit', 'notify', 'agenda', '/generated', '/conformance', '/package.json'],
  mhd: ['base', 'search', 'store', 'audit', 'fhir'],
  [APP]: ['base', 'search', 'store', 'auth', 'policy', 'audit', 'notify', 'accounts', 'agenda', 'fhir', 'mhd'],
  // The dataset generator (issue 18): writes as the server does, through the port, without HTTP.
  seed: ['base', 'search', 'store', 'auth', 'policy', 'audit', 'notify'],
  // The operator's commands read config.ts; app.ts and main.ts never import them.
  cli: ['base', 'store', 'auth', 'seed', APP],
  // The conformance runner talks HTTP to a server; it only mints development tokens.
  conformance: ['base', 'auth'],
  // Data fhir/ requires: what `npm run build` generates, the CapabilityStatement's fixed parts
  // (conformance/capability-base.json) and the version in package.json.
  '/generated': [],
  '/conformance': [],
  '/package.json': [],
};

/** One import of a file of src/, and the folders it goes from and to. */
interface Edge {
  file: string;
  line: number;
  specifier: string;
  from: string;
  to: string;
}

/** The module specifiers a TypeScript file names, with the 1-based line of each. */
function importsOf(fileName: string, text: string): { specifier: string; line: number }[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: { specifier: string; line: number }[] = [];
  const add = (node: ts.Node | undefined) => {
    if (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) {
      found.push({ specifier: node.text, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/**
 * The layer of a path relative to the project: the top folder of a file of src/, `app` for a file
 * directly in src/, and `/<entry>` for what lies outside src/ (`/generated`, `/test`).
 */
function layerOf(relative: string): string {
  const parts = relative.split(/[\\/]/);
  if (parts[0] !== 'src') return OUTSIDE + parts[0];
  return parts.length === 2 ? APP : parts[1];
}

/** The imports of one file of src/ that reach another file of the project (packages are not edges). */
function edgesOf(file: string): Edge[] {
  const name = path.relative(PROJECT, file);
  const from = layerOf(name);
  return importsOf(file, fs.readFileSync(file, 'utf8'))
    .filter(({ specifier }) => specifier.startsWith('.'))
    .map(({ specifier, line }) => ({ file: name, line, specifier, from, to: layerOf(path.relative(PROJECT, path.resolve(path.dirname(file), specifier))) }));
}

/** The imports the table does not allow, each naming the file, the import and the rule. */
function violations(edges: Edge[], allowed: Graph): string[] {
  const found: string[] = [];
  for (const edge of edges) {
    if (edge.from === edge.to) continue;
    const where = `${edge.file}:${edge.line} imports '${edge.specifier}'`;
    const rule = allowed[edge.from];
    if (rule === undefined) found.push(`${where}: folder ${edge.from} is not declared in ALLOWED`);
    else if (!rule.includes(edge.to)) found.push(`${where} (${edge.to}): ${rule.length > 0 ? `${edge.from} may import only ${rule.join(', ')}` : `${edge.from} imports no other folder`}`);
  }
  return found;
}

/** A cycle of the declared graph as the path that closes it (`a -> b -> a`), or undefined. */
function cycleIn(graph: Graph): string[] | undefined {
  const done = new Set<string>();
  const walk = (node: string, trail: string[]): string[] | undefined => {
    const seen = trail.indexOf(node);
    if (seen >= 0) return [...trail.slice(seen), node];
    if (done.has(node)) return undefined;
    for (const next of graph[node] ?? []) {
      const cycle = walk(next, [...trail, node]);
      if (cycle) return cycle;
    }
    done.add(node);
    return undefined;
  };
  for (const node of Object.keys(graph)) {
    const cycle = walk(node, []);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Every folder a folder may reach through the declared graph. */
function reachable(graph: Graph, from: string): Set<string> {
  const seen = new Set<string>();
  const walk = (node: string) => {
    for (const next of graph[node] ?? []) {
      if (seen.has(next)) continue;
      seen.add(next);
      walk(next);
    }
  };
  walk(from);
  return seen;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.isFile() && entry.name.endsWith('.ts') ? [full] : [];
  });
}

t.test('the parser finds static, re-exported, side-effect, dynamic and type-only imports', async (t) => {
  const text = [
    `import { a } from './a.js';`,
    `import type { B } from '../b/b.js';`,
    `export { c } from "./c.js";`,
    `export * from './d.js';`,
    `import './e.js';`,
    `const f = await import('../f/f.js');`,
    `type G = typeof import('../g/g.js');`,
    `const h = require('./h.cjs');`,
    `// import { x } from '../in-a-comment.js';`,
    `const text = "import { y } from '../in-a-string.js'";`,
    `const computed = await import(name);`,
  ].join('\n');
  t.same(importsOf('x.ts', text), [
    { specifier: './a.js', line: 1 },
    { specifier: '../b/b.js', line: 2 },
    { specifier: './c.js', line: 3 },
    { specifier: './d.js', line: 4 },
    { specifier: './e.js', line: 5 },
    { specifier: '../f/f.js', line: 6 },
    { specifier: '../g/g.js', line: 7 },
    { specifier: './h.cjs', line: 8 },
  ]);
});

t.test('a file is in the layer of its top folder under src/, in app when directly in src/, and named from the root outside src/', async (t) => {
  t.equal(layerOf('src/store/sqlite/compile.ts'), 'store');
  t.equal(layerOf('src/policy/decide.ts'), 'policy');
  t.equal(layerOf('src/config.ts'), APP);
  t.equal(layerOf('generated/elements.json'), '/generated');
  t.equal(layerOf('test/helpers.ts'), '/test');
});

t.test('the checker reports an import the table does not allow, naming the file, the import and the rule', async (t) => {
  const allowed: Graph = { base: [], fhir: ['base', 'policy'], policy: ['base'] };
  const edges: Edge[] = [
    { file: 'src/fhir/read.ts', line: 3, specifier: '../policy/decide.js', from: 'fhir', to: 'policy' },
    { file: 'src/policy/restrict.ts', line: 5, specifier: '../base/outcome.js', from: 'policy', to: 'base' },
    { file: 'src/policy/decide.ts', line: 2, specifier: './matrix.js', from: 'policy', to: 'policy' },
    { file: 'src/policy/restrict.ts', line: 6, specifier: '../fhir/outcome.js', from: 'policy', to: 'fhir' },
    { file: 'src/base/registry.ts', line: 4, specifier: '../policy/known.js', from: 'base', to: 'policy' },
  ];
  t.same(violations(edges, allowed), [
    `src/policy/restrict.ts:6 imports '../fhir/outcome.js' (fhir): policy may import only base`,
    `src/base/registry.ts:4 imports '../policy/known.js' (policy): base imports no other folder`,
  ]);
});

t.test('the checker reports a folder the table does not declare', async (t) => {
  const edges: Edge[] = [{ file: 'src/record/agenda.ts', line: 1, specifier: '../base/outcome.js', from: 'record', to: 'base' }];
  t.same(violations(edges, { base: [] }), [`src/record/agenda.ts:1 imports '../base/outcome.js': folder record is not declared in ALLOWED`]);
});

t.test('the cycle check finds a cycle in a declared graph and none in a layered one', async (t) => {
  t.same(cycleIn({ base: [], search: ['base', 'fhir'], fhir: ['search', 'policy'], policy: ['base'] }), ['search', 'fhir', 'search']);
  t.same(cycleIn({ a: ['a'] }), ['a', 'a']);
  t.equal(cycleIn({ base: [], search: ['base'], fhir: ['search', 'base'] }), undefined);
});

t.test('the declared graph is acyclic and names only declared folders', async (t) => {
  t.equal(cycleIn(ALLOWED), undefined, 'no cycle');
  for (const [folder, targets] of Object.entries(ALLOWED)) {
    for (const target of targets) t.ok(target in ALLOWED, `${folder} -> ${target}: ${target} is declared`);
  }
  t.same(ALLOWED.base, [], 'base imports no other folder');
  for (const lower of ['base', 'search', 'store', 'auth', 'policy', 'audit', 'notify']) {
    t.notOk(reachable(ALLOWED, lower).has('fhir'), `${lower} never reaches fhir`);
  }
});

t.test('every folder of src/ is declared in the table, and every folder of src/ the table declares exists', async (t) => {
  const folders = new Set(sourceFiles(SRC).map((file) => layerOf(path.relative(PROJECT, file))));
  t.same([...folders].sort(), Object.keys(ALLOWED).filter((layer) => !layer.startsWith(OUTSIDE)).sort());
});

t.test('every import in src/ goes only where the table allows', async (t) => {
  const files = sourceFiles(SRC);
  const edges = files.flatMap(edgesOf);
  // The scan reads every folder and sees real imports (an empty scan would pass anything).
  t.ok(files.length > 50 && files.includes(path.join(SRC, 'store/sqlite/compile.ts')), `${files.length} files of src/ read, store/sqlite/ among them`);
  t.ok(
    edges.some((e) => e.file === 'src/search/plan.ts' && e.specifier === '../base/outcome.js' && e.to === 'base'),
    'it sees search/plan.ts import base/outcome.ts',
  );
  t.ok(edges.some((e) => e.from === 'fhir' && e.to === 'policy'), 'it sees fhir import policy');
  t.same(violations(edges, ALLOWED), [], 'move what a lower layer needs down (to base/), or change ALLOWED and docs/architecture.md');
});

t.test('nothing in src/ imports main.ts: start-up is run, never imported', async (t) => {
  const main = path.join('src', 'main.ts');
  const importers = sourceFiles(SRC)
    .flatMap(edgesOf)
    .filter((e) => path.join(path.dirname(e.file), e.specifier).replace(/\.js$/, '.ts') === main)
    .map((e) => `${e.file}:${e.line}`);
  t.same(importers, []);
});
