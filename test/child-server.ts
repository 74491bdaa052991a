// The real server as a child process (src/main.ts through tsx), for the tests that kill it,
// restart it, or read what it prints. Every child started here is SIGKILLed at teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import t from 'tap';
import { PROJECT } from './helpers.js';

export const LISTENING = /^Carnet FHIR R4 API listening on http:\/\/127\.0\.0\.1:(\d+)\/fhir\b/;

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

const live = new Set<ChildProcess>();
t.teardown(() => {
  for (const proc of live) proc.kill('SIGKILL');
});

/** The parent's environment without anything that configures the server, the loader or tap. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(CARNET_|TAP|NODE_OPTIONS$|PORT$|HOST$|LOG_LEVEL$)/.test(key)) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** Spawns the server with `env` (PORT=0 unless given); it is killed at teardown if still running. */
export function spawnChild(env: Record<string, string>): { proc: ChildProcess; exited: Promise<Exit> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: PROJECT, env: childEnv({ PORT: '0', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  const exited = new Promise<Exit>((resolve) => {
    // 'close' rather than 'exit': stdout and stderr are then fully read.
    proc.once('close', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });
  return { proc, exited };
}

export interface Child {
  proc: ChildProcess;
  port: number;
  base: string;
  stderr: () => string;
  /** The start-up line. */
  line: string;
  exited: Promise<Exit>;
}

/**
 * With MONGODB_URI set, the store of a server started on `dataDir`: a MongoDB database named after
 * the folder, so that a restarted server finds the data of the one it replaces.
 */
export function childStore(dataDir: string): Record<string, string> {
  const uri = process.env.MONGODB_URI;
  if (!uri) return {};
  const database = `carnet_child_${crypto.createHash('sha1').update(dataDir).digest('hex').slice(0, 12)}`;
  const [, origin, query] = /^(mongodb(?:\+srv)?:\/\/[^/?]+)\/?[^?]*(\?.*)?$/.exec(uri) ?? [];
  if (!origin) throw new Error('MONGODB_URI is not a mongodb:// URI');
  return { CARNET_STORE: `${origin}/${database}${query ?? ''}` };
}

/** Starts the server on `dataDir` (and its MongoDB database, see childStore) and resolves once its first stdout line (the listening line) is read. */
export function startServer(dataDir: string, env: Record<string, string> = {}): Promise<Child> {
  const { proc, exited } = spawnChild({ CARNET_DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...childStore(dataDir), ...env });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    let stdout = '';
    const onData = (chunk: string) => {
      stdout += chunk;
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      proc.stdout!.off('data', onData);
      proc.stdout!.resume(); // keep draining so the child never blocks on a full pipe
      const first = stdout.slice(0, newline);
      const match = LISTENING.exec(first);
      if (!match) {
        reject(new Error(`unexpected first stdout line: ${first}\nstderr: ${stderr}`));
        return;
      }
      const port = Number(match[1]);
      resolve({ proc, port, base: `http://127.0.0.1:${port}/fhir`, stderr: () => stderr, line: first, exited });
    };
    proc.stdout!.setEncoding('utf8').on('data', onData);
    void exited.then(({ code, signal }) => reject(new Error(`server exited (code ${code}, signal ${signal}) before listening\nstderr: ${stderr}`)));
  });
}
