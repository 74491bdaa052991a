// Shared by the benchmark scripts: start the built server as a child process on a temporary data
// directory (PORT=0), mint development tokens for it, and clean up on exit or Ctrl-C.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(PROJECT, 'dist/main.js');
const LISTENING = /^Carnet FHIR R4 API listening on http:\/\/127\.0\.0\.1:(\d+)\/fhir\b/;
const READY_IN = /ready in (\d+) ms/;

/** Exits with a message when the build is missing. */
export function requireBuild() {
  if (!fs.existsSync(MAIN)) {
    console.error(`${path.relative(process.cwd(), MAIN)} is missing: run \`npm run build\` first`);
    process.exit(1);
  }
}

const children = new Set();
const tempDirs = [];

function serverEnv(dataDir, settings) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    // NODE_ENV is dropped too: development tokens (below) are refused when it is production.
    if (!/^(CARNET_|NODE_OPTIONS$|NODE_ENV$|PORT$|HOST$|LOG_LEVEL$)/.test(key)) env[key] = value;
  }
  return { ...env, PORT: '0', HOST: '127.0.0.1', CARNET_DATA_DIR: dataDir, ...settings };
}

/** Spawns the server on a fresh data directory with extra environment `settings`; resolves when its listening line is read. */
export function startServer(settings = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-bench-'));
  tempDirs.push(dataDir);
  const t0 = performance.now();
  const proc = spawn(process.execPath, [MAIN], { cwd: PROJECT, env: serverEnv(dataDir, settings), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    children.delete(proc);
    resolve({ code, signal });
  }));
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    let stdout = '';
    const onData = (chunk) => {
      stdout += chunk;
      // Complete lines only; the listening line is not always the first (LOG_LEVEL=info).
      const line = stdout.slice(0, stdout.lastIndexOf('\n') + 1).split('\n').find((l) => LISTENING.test(l));
      if (line === undefined) return;
      const match = LISTENING.exec(line);
      const ready = READY_IN.exec(line);
      const startupMs = performance.now() - t0;
      proc.stdout.off('data', onData);
      proc.stdout.resume(); // request log lines are read and dropped
      const port = Number(match[1]);
      resolve({
        proc,
        exited,
        dataDir,
        startupMs,
        selfReportedMs: ready ? Number(ready[1]) : undefined,
        origin: `http://127.0.0.1:${port}`,
        async stop() {
          proc.kill('SIGTERM');
          const exit = await exited;
          if (exit.code !== 0) console.warn(`warning: server exited with ${JSON.stringify(exit)}\n${stderr}`);
        },
      });
    };
    proc.stdout.setEncoding('utf8').on('data', onData);
    exited.then((exit) => reject(new Error(`server exited ${JSON.stringify(exit)} before listening\n${stderr}`)));
  });
}

/**
 * The Authorization header for `server`: a development token for `claims` (named as in
 * CARNET_CLAIMS; default a system client with every scope),
 * signed with the development issuer's key the server created in its data directory. None for a
 * build without authentication.
 */
export async function authorizationFor(server, claims = { kind: 'system', clientId: 'carnet-bench', scope: 'system/*.cruds' }) {
  const dist = (file) => path.join(PROJECT, 'dist/auth', file);
  if (!fs.existsSync(dist('keys.js'))) return {};
  const { loadOrCreateKey, KEY_NAMES } = await import(pathToFileURL(dist('keys.js')).href);
  const { mintToken, CARNET_CLAIMS: c } = await import(pathToFileURL(dist('claims.js')).href);
  const { DEVELOPMENT_ISSUER } = await import(pathToFileURL(dist('context.js')).href);
  const key = await loadOrCreateKey(server.dataDir, KEY_NAMES.development);
  const token = await mintToken(key, {
    issuer: DEVELOPMENT_ISSUER,
    audience: `${server.origin}/fhir`,
    subject: claims.clientId ?? claims.fhirUser ?? 'carnet-bench',
    ttl: 3600,
    claims: Object.fromEntries(Object.entries(claims).map(([name, value]) => [c[name], value])),
  });
  return { authorization: `Bearer ${token}` };
}

export function cleanup() {
  for (const proc of children) proc.kill('SIGKILL');
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

