// conformance/carnet: a Carnet for one conformance run: `node dist/main.js` on a fresh temporary
// data folder (PORT=0 unless a port is chosen), development tokens for the TestScripts' actors,
// and a SMART Backend Services client registered with `dist/cli/client.js`. stop() ends it and
// removes the folder.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { KEY_NAMES, loadOrCreateKey } from '../auth/keys.js';
import { mintActorTokens, SMART_CLIENT_SCOPES, smartKeyPair, type SmartClient } from './actors.js';

/** The project folder (this file is src/conformance/ or dist/conformance/). */
export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LISTENING = /listening on (http:\/\/\S+\/fhir)\b/;

export interface StartedCarnet {
  base: string;
  tokens: Record<string, string>;
  smartClient: SmartClient;
  stop(): Promise<void>;
}

/** The parent's environment without what configures a server. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(CARNET_|PORT$|HOST$|LOG_LEVEL$|NODE_ENV$|NODE_OPTIONS$|TAP)/.test(key)) env[key] = value;
  return { ...env, ...extra };
}

/** The FHIR base of the listening line Carnet prints first; stdout is drained after it. */
function listening(proc: ChildProcess): Promise<string> {
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: proc.stdout! });
  return new Promise((resolve, reject) => {
    lines.once('line', (first) => {
      const match = LISTENING.exec(first);
      if (match) resolve(match[1]);
      else reject(new Error(`Carnet did not start: ${first}\n${stderr}`));
    });
    proc.once('exit', (code) => reject(new Error(`Carnet exited (${code}) before listening:\n${stderr}`)));
  });
}

/** Starts Carnet from dist/ (run `npm run build` first) on a new temporary data folder. */
export async function startCarnet(port = 0): Promise<StartedCarnet> {
  const main = path.join(PROJECT, 'dist/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-conformance-'));
  const env = cleanEnv({ CARNET_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
  const proc = spawn(process.execPath, [main], { cwd: PROJECT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const base = await listening(proc);
    // The server created the development issuer's key at start-up: the same key signs the tokens.
    const tokens = await mintActorTokens(await loadOrCreateKey(dataDir, KEY_NAMES.development), base);
    const { privateJwk, jwks } = await smartKeyPair();
    const jwksFile = path.join(dataDir, 'conformance-client-jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify(jwks));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(PROJECT, 'dist/cli/client.js'), 'register', '--name', 'Carnet conformance runner', '--kind', 'system', '--jwks', jwksFile, '--scope', SMART_CLIENT_SCOPES, '--certified'],
      { cwd: PROJECT, env },
    );
    const clientId = stdout.trim().split('\n').pop()!.trim();
    return { base, tokens, smartClient: { clientId, privateJwk }, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
