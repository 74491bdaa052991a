// store/sqlite/writer: the entry of the writer thread (writer-thread.ts): a store on the same
// database whose transactions run here, one at a time, in the order they were sent.

import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './index.js';
import { serialize, type Reply, type Request, type WriterData } from './writer-thread.js';

const data = workerData as WriterData | undefined;
if (parentPort && data?.carnetWriter === true) {
  const port = parentPort;
  const store = new SqliteStore({ dataDir: data.dataDir, ...(data.sync ? { sync: data.sync } : {}), writer: 'inline' });
  port.on('message', (request: Request | 'close') => {
    if (request === 'close') {
      void store.close().then(() => port.close());
      return;
    }
    let reply: Reply;
    try {
      reply = { id: request.id, results: store.transactNow(request.ops, request.at) };
    } catch (error) {
      reply = { id: request.id, error: serialize(error) };
    }
    port.postMessage(reply);
  });
}
