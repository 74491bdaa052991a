// The secret that keys the hashes of provisional codes (auth/keys loadOrCreateSecret): created
// once in the data directory, private to its owner, and the same for every process that loads it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ACCOUNT_CODE_SECRET, loadOrCreateSecret } from '../../src/auth/keys.js';

t.test('the account code secret is created once, 32 bytes, readable by its owner only', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-keys-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const together = await Promise.all([loadOrCreateSecret(dir, ACCOUNT_CODE_SECRET), loadOrCreateSecret(dir, ACCOUNT_CODE_SECRET)]);
  t.equal(together[0].length, 32);
  t.ok(together[0].equals(together[1]), 'two loaders starting together read the same secret');
  t.ok((await loadOrCreateSecret(dir, ACCOUNT_CODE_SECRET)).equals(together[0]), 'and so does a later one');
  const file = path.join(dir, 'keys', `${ACCOUNT_CODE_SECRET}.secret`);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.equal(fs.readdirSync(path.join(dir, 'keys')).length, 1, 'no temporary file is left');
});

t.test('a secret file that is too short is refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-keys-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', 'short.secret'), Buffer.alloc(8).toString('base64'));
  await t.rejects(loadOrCreateSecret(dir, 'short'), /at least 32 bytes/);
});
