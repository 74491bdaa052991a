// workers: CARNET_WORKERS=N runs N server processes on one machine (node:cluster), sharing the
// listening port and the store (one data directory, or one MongoDB database). This is the
// supervisor, the primary process: it serves no request and holds no state that decides anything.
// It starts the workers, prints one start-up line once all of them listen, starts a worker again
// when one dies unasked (after a pause that grows while they keep dying), and on SIGINT/SIGTERM
// stops them all and exits. Each worker is src/main.ts's server, as a single process would be;
// what keeps several processes coherent is in the store (docs/deployment.md, "Several processes").

import cluster, { type Worker } from 'node:cluster';

/** A worker's message to the supervisor: its start-up line (printed once, by the supervisor). */
export interface ListeningMessage {
  carnet: 'listening';
  line: string;
}

export function isListeningMessage(message: unknown): message is ListeningMessage {
  return typeof message === 'object' && message !== null && (message as ListeningMessage).carnet === 'listening';
}

const MAX_RESTART_DELAY_MS = 30_000;

/** Runs the supervisor of `count` workers; returns once they are started (they run until a signal). */
export function supervise(count: number): void {
  let stopping = false;
  let listening = 0;
  let announced = false;
  let failures = 0;
  let firstLine: string | undefined;

  const start = (): Worker => {
    const worker = cluster.fork();
    worker.on('message', (message: unknown) => {
      if (!isListeningMessage(message)) return;
      failures = 0;
      firstLine ??= message.line;
      listening++;
      if (!announced && listening >= count) {
        announced = true;
        process.stdout.write(`${firstLine.replace(/, ready in \d+ ms$/, '')}, workers: ${count} processes (pid ${process.pid} supervises), ready in ${Math.round(performance.now())} ms\n`);
      }
    });
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    // A worker that could not start (a configuration error) will not start better a second time.
    if (!announced) {
      process.stderr.write(`Carnet could not start: worker ${worker.process.pid} exited (code ${code}, signal ${signal}) before listening\n`);
      stopAll(code === 69 ? 69 : 1);
      return;
    }
    const delay = Math.min(MAX_RESTART_DELAY_MS, 250 * 2 ** failures++);
    process.stderr.write(`Carnet worker ${worker.process.pid} exited (code ${code}, signal ${signal}); starting another in ${delay} ms\n`);
    setTimeout(() => {
      if (!stopping) start();
    }, delay);
  });

  const stopAll = (exitCode: number) => {
    if (stopping) return;
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (workers.length === 0) process.exit(exitCode);
    for (const worker of workers) worker.process.kill('SIGTERM');
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
    });
  };
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));

  for (let i = 0; i < count; i++) start();
}
