// cli/seed: `npm run -s seed -- --patients 100000 --documents 1000000` fills the configured store
// (CARNET_DATA_DIR or CARNET_MONGODB_URI, as the server reads them) with a deterministic world
// (src/seed), with a progress bar and an ETA on stderr. Run it on an empty store, server stopped.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { openMongoStore } from '../store/mongo/index.js';
import type { Store } from '../store/port.js';
import { seedStore, shapeOf, type SeedOptions } from '../seed/index.js';

const USAGE = `Usage: npm run -s seed -- [options]

Fills the store the server is configured with (CARNET_DATA_DIR, or CARNET_MONGODB_URI) with a
deterministic world: professionals, patients with INS and a GP, permits, blocks, masks, documents
of the real type mix pushed by vendor systems, and an access history, each written as the server
writes it (index entries, consent stamps, AuditEvents), then the patients' notifications.
Run it on an empty store, with the server stopped.

  --patients <n>        patients (default 1000)
  --documents <n>       DocumentReferences (default 10 per patient)
  --practitioners <n>   professionals, half of them GPs (default patients / 50, at least 4)
  --heavy <n>           documents of the first patient, pat-0000000 (default 2000, at most --documents)
  --accesses <x>        access-history records per document (default 0.5)
  --seed <n>            PRNG seed (default 1): equal options and seed give equal data
  --scale pilot         the 3.3-million-account pilot's shape (accounts in every state, documents on
                        a third of them), scaled to --patients (default 33000, the pilot at 1/100)
  --batch <n>           interactions per store transaction (default 500)
  --notifications       derive the patients' notifications of the seeded history with the server's
                        notifier (slow: a few hundred changes/s); by default the history is marked
                        as notified, so the server does not derive them at start either
  --base-url <url>      the FHIR base the records name (default CARNET_BASE_URL or http://HOST:PORT/fhir)
`;

const OPTIONS = {
  patients: { type: 'string' },
  documents: { type: 'string' },
  practitioners: { type: 'string' },
  heavy: { type: 'string' },
  accesses: { type: 'string' },
  seed: { type: 'string' },
  scale: { type: 'string' },
  batch: { type: 'string' },
  notifications: { type: 'boolean' },
  'base-url': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

function count(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}, not "${value}"`);
  return n;
}

function optionsOf(argv: string[], baseUrl: string): SeedOptions | undefined {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
  if (values.help) return undefined;
  if (values.scale !== undefined && values.scale !== 'pilot') throw new UsageError(`--scale takes "pilot", not "${values.scale}"`);
  const pilot = values.scale === 'pilot';
  const patients = count(values.patients, 'patients', pilot ? 33_000 : 1000, 1);
  const documents = count(values.documents, 'documents', patients * (pilot ? 3 : 10));
  const accesses = values.accesses === undefined ? 0.5 : Number(values.accesses);
  if (!(accesses >= 0 && accesses <= 100)) throw new UsageError(`--accesses must be a number from 0 to 100, not "${values.accesses}"`);
  const baseUrlGiven = values['base-url'];
  if (baseUrlGiven !== undefined && !/^https?:\/\/\S+$/.test(baseUrlGiven)) throw new UsageError('--base-url must be an http(s) URL');
  const practitioners = values.practitioners === undefined ? undefined : count(values.practitioners, 'practitioners', 4, 4);
  return {
    patients,
    documents,
    ...(practitioners !== undefined ? { practitioners } : {}),
    heavy: Math.min(documents, count(values.heavy, 'heavy', 2000)),
    accessesPerDocument: accesses,
    seed: count(values.seed, 'seed', 1),
    pilot,
    batch: count(values.batch, 'batch', 500, 1),
    notifications: values.notifications ? 'derive' : 'skip',
    baseUrl: (baseUrlGiven ?? baseUrl).replace(/\/+$/, ''),
  };
}

async function main(argv: string[]): Promise<number> {
  const config = loadConfig(process.env);
  let options: SeedOptions | undefined;
  try {
    options = optionsOf(argv, config.baseUrl);
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error;
    process.stderr.write(`seed: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(USAGE);
    return 0;
  }
  let store: Store;
  if (config.store.kind === 'sqlite') store = new SqliteStore({ dataDir: config.store.dataDir, sync: config.sync });
  else store = await openMongoStore({ uri: config.store.uri, serverSelectionTimeoutMS: config.store.serverSelectionTimeoutMS });
  const shape = shapeOf(options);
  const bar = new cliProgress.SingleBar(
    // Piped (no terminal), a line every 10 s instead of the redrawn bar.
    { format: '{phase} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted}', etaBuffer: 50, fps: 4, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 10_000 },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(shape.total, 0, { phase: 'data', rate: 0 });
  let phase: 'data' | 'notifications' = 'data';
  try {
    const result = await seedStore(store, {
      ...options,
      progress(done, now) {
        if (now !== phase) {
          phase = now;
          // Every write is two changes (the resource and its AuditEvent), every access one.
          bar.setTotal(2 * (shape.total - shape.accesses) + shape.accesses);
        }
        const seconds = (performance.now() - started) / 1000;
        bar.update(done, { phase: now, rate: Math.round(done / Math.max(seconds, 0.001)) });
      },
    });
    bar.stop();
    await store.close();
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(
      `seeded ${store.name}: ${result.patients} patients, ${result.practitioners} professionals, ${result.documents} documents, ${result.accesses} access records ` +
        `(${result.written} interactions, ${Math.round(result.written / seconds)}/s; ${result.derived} changes through the notifier) in ${seconds.toFixed(1)} s\n`,
    );
    return 0;
  } catch (error) {
    bar.stop();
    await store.close().catch(() => undefined);
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`seed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
