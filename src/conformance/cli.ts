// conformance/cli: `npm run conformance -- [--base <url>] [--token <bearer> | --tokens <file>] ...`
// runs TestScripts against a FHIR server and writes TestReports and a summary. Without --base it
// starts Carnet itself (dist/main.js, temporary data folder) for the run. Exit status: 0 when every
// TestScript passed, 1 when one failed, 2 for a usage error. See docs/conformance.md.

import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ACTORS, DEFAULT_ACTOR, smartVariables, type SmartClient } from './actors.js';
import { PROJECT, startCarnet, type StartedCarnet } from './carnet.js';
import { summaryLine, writeReports } from './report.js';
import { findScripts, runScripts } from './suite.js';
import { platformFetch } from './runner.js';
import type { Supplied } from './variables.js';

const USAGE = `Usage: npm run conformance -- [options]

Runs FHIR R4 TestScripts and writes a TestReport per script, report.md and report.html.

  --base <url>           the FHIR base URL to test (default: start Carnet from dist/ for the run)
  --token <bearer>       the bearer token of every actor not given by --tokens
  --tokens <file>        JSON object of variables, e.g. {"token-system": "...", "token-patient": "..."}
  --smart-client <file>  JSON {"clientId": "...", "privateJwk": {...}}: a registered backend-services
                         client, for the client-assertion variable (Carnet started here: registered itself)
  --scripts <path>       a TestScript file or folder (repeatable; default conformance/testscripts)
  --out <dir>            where reports go (default conformance/report)
  --port <n>             the port of the Carnet started here (default: a free one)

Actors (${Object.keys(ACTORS).join(', ')}): ${Object.entries(ACTORS)
  .map(([k, v]) => `\n  ${k}: ${v.description}`)
  .join('')}
`;

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        base: { type: 'string' },
        token: { type: 'string' },
        tokens: { type: 'string' },
        'smart-client': { type: 'string' },
        scripts: { type: 'string', multiple: true },
        out: { type: 'string' },
        port: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (values.port !== undefined && !/^\d+$/.test(values.port)) throw new Error('--port must be a number');
    if (values.base !== undefined && !/^https?:\/\/\S+$/.test(values.base)) throw new Error('--base must be an http(s) URL');
  } catch (error) {
    process.stderr.write(`conformance: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  const scripts = findScripts(values.scripts ?? [path.relative(process.cwd(), path.join(PROJECT, 'conformance/testscripts')) || '.']);
  const out = values.out ?? path.join(PROJECT, 'conformance/report');

  let carnet: StartedCarnet | undefined;
  if (values.base === undefined) {
    carnet = await startCarnet(Number(values.port ?? 0));
    process.stdout.write(`conformance: started Carnet at ${carnet.base}\n`);
  }
  try {
    const base = (values.base ?? carnet!.base).replace(/\/+$/, '');
    const variables: Record<string, Supplied> = { 'run-id': randomUUID(), 'run-number': String(Date.now()), 'token-none': '', ...(carnet?.tokens ?? {}) };
    if (values.tokens) Object.assign(variables, readJson<Record<string, string>>(values.tokens));
    const smartClient = values['smart-client'] ? readJson<SmartClient>(values['smart-client']) : carnet?.smartClient;
    if (smartClient) Object.assign(variables, smartVariables(base, smartClient, platformFetch));
    const token = values.token ?? (typeof variables[DEFAULT_ACTOR] === 'string' ? (variables[DEFAULT_ACTOR] as string) : undefined);
    const outcomes = await runScripts(scripts, { base, variables, ...(token ? { token } : {}) }, ({ report }) =>
      process.stdout.write(`${report.result === 'pass' ? 'pass' : 'FAIL'}  ${report.name} (score ${report.score})\n`),
    );
    writeReports(out, outcomes, base);
    const reports = outcomes.map((o) => o.report);
    const shown = path.relative(process.cwd(), out);
    process.stdout.write(`${summaryLine(reports)}\nreports: ${shown.startsWith('..') ? out : shown || '.'}/report.md, report.html, testreport-*.json\n`);
    return reports.every((r) => r.result === 'pass') ? 0 : 1;
  } finally {
    await carnet?.stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`conformance: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
