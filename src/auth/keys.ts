// auth/keys: Carnet's own signing keys, kept as JWK files in CARNET_DATA_DIR/keys: the key that
// signs backend-services access tokens, and the development issuer's key. Whichever process
// needs a key first (the server or a CLI) creates it; creation is atomic, so two processes
// starting together end up with the same key. Also the secret keying provisional codes' hashes.

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type JWK, type CryptoKey } from 'jose';

export const SIGNING_ALG = 'ES256';

export interface SigningKey {
  kid: string;
  alg: typeof SIGNING_ALG;
  privateKey: CryptoKey;
  /** The public half, as published in a JWKS. */
  publicJwk: JWK;
}

/** The file names of Carnet's keys in CARNET_DATA_DIR/keys. */
export const KEY_NAMES = { signing: 'carnet-signing', development: 'development-issuer' } as const;

async function fromJwk(jwk: JWK): Promise<SigningKey> {
  const { d: _d, ...publicJwk } = jwk;
  return {
    kid: jwk.kid as string,
    alg: SIGNING_ALG,
    privateKey: (await importJWK(jwk, SIGNING_ALG)) as CryptoKey,
    publicJwk: { ...publicJwk, alg: SIGNING_ALG, use: 'sig' },
  };
}

/** A fresh key kept in memory only (tests, or a deployment that injects keys another way). */
export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  return fromJwk({ ...(await exportJWK(privateKey)), kid: randomUUID(), alg: SIGNING_ALG });
}

/** Writes `content` to `file` unless it exists; atomic: when two processes race, the first link wins and both read it. */
async function createOnce(file: string, content: () => Promise<string> | string): Promise<void> {
  if (fs.existsSync(file)) return;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  fs.writeFileSync(temp, await content(), { mode: 0o600 });
  try {
    fs.linkSync(temp, file); // fails if another process created it meanwhile: theirs wins
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/** Loads the key `name` from `dataDir`/keys, creating it (ES256) when it does not exist yet. */
export async function loadOrCreateKey(dataDir: string, name: string): Promise<SigningKey> {
  const file = path.join(dataDir, 'keys', `${name}.jwk.json`);
  await createOnce(file, async () => {
    const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
    return JSON.stringify({ ...(await exportJWK(privateKey)), kid: randomUUID(), alg: SIGNING_ALG });
  });
  return fromJwk(JSON.parse(fs.readFileSync(file, 'utf8')) as JWK);
}

/** The file name of the secret that keys the hashes of provisional codes (policy/account.ts), in CARNET_DATA_DIR/keys. */
export const ACCOUNT_CODE_SECRET = 'account-code';

/**
 * Loads the 32-byte secret `name` from `dataDir`/keys (base64), creating it when it does not exist
 * yet, as the signing keys are: every process of a deployment reads the same one.
 */
export async function loadOrCreateSecret(dataDir: string, name: string): Promise<Buffer> {
  const file = path.join(dataDir, 'keys', `${name}.secret`);
  await createOnce(file, () => randomBytes(32).toString('base64'));
  const secret = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  if (secret.length < 32) throw new Error(`${file}: a secret of at least 32 bytes (base64) is expected`);
  return secret;
}
