// The storage port's contract (contract.ts) on every engine of engines.ts: the embedded engine on
// a file as production runs it (writer thread, audit journal, deferred index rows) and in memory,
// and MongoDB when MONGODB_URI names a server (a reported skip otherwise).
import t from 'tap';
import { ENGINES } from './engines.js';
import { storeContract } from './contract.js';

for (const engine of ENGINES) {
  if (engine.skip) {
    process.stdout.write(`# ${engine.name}: ${engine.skip}\n`);
    t.test(`${engine.name}: the storage port contract`, { skip: engine.skip }, () => undefined);
  } else await storeContract(t, engine.name, engine.open);
}
