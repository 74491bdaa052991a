// cli/client: the operator's command for the app catalogue, on the store CARNET_STORE selects (it
// may run while the server does: SQLite serialises the writes, MongoDB is shared anyway).
//   npm run -s client -- register --name <name> --kind system|patient-app|practitioner-app \
//        --jwks <file> --scope "<scopes>" [--certified [--certified-on <date>]] [--organization <id>]
//        [--editor <name>] [--description <text>]
//   npm run -s client -- list
// `register` prints a short summary, then the new client id alone on the last line.

import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { CLIENT_KINDS, ClientValidationError, registerClient } from '../auth/clients.js';
import { dataOf } from '../auth/catalogue.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { openMongoStore } from '../store/mongo/index.js';
import type { Store } from '../store/port.js';

const USAGE = `Usage:
  npm run -s client -- register --name <name> --kind ${CLIENT_KINDS.join('|')} \\
      --jwks <file> --scope "<scopes>" [--certified [--certified-on <YYYY-MM-DD>]] \\
      [--organization <id>] [--editor <name>] [--description <text>]
  npm run -s client -- list

register  adds an app to the catalogue and prints its client id on the last line. The JWKS file
          holds the app's public keys ({"keys": [...]}, or one JWK), EC P-384 (ES384) or RSA
          (RS384), each with a kid. Only --certified clients get tokens and appear in GET /apps,
          which shows users the name, --editor (required for a certified patient-app),
          --description, the certification date (--certified-on, default today) and the
          data the scopes let it read, in plain words.
list      prints every registered client: id, kind, certified or not, name, scopes.
`;

const OPTIONS = {
  name: { type: 'string' },
  kind: { type: 'string' },
  jwks: { type: 'string' },
  scope: { type: 'string' },
  certified: { type: 'boolean' },
  organization: { type: 'string' },
  editor: { type: 'string' },
  description: { type: 'string' },
  'certified-on': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

function readJwks(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the JWKS file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`the JWKS file ${file} is not JSON`);
  }
  // A single JWK is accepted as a set of one.
  if (typeof value === 'object' && value !== null && 'kty' in value) return { keys: [value] };
  return value;
}

async function openStore(): Promise<Store> {
  const config = loadConfig(process.env);
  if (config.store.kind === 'mongodb') return openMongoStore({ uri: config.store.uri, serverSelectionTimeoutMS: config.store.serverSelectionTimeoutMS });
  return new SqliteStore({ dataDir: config.dataDir, sync: config.sync });
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    process.stderr.write(`client: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = positionals[0];
  const usage = (message: string) => {
    process.stderr.write(`client: ${message}\n\n${USAGE}`);
    return 2;
  };
  if (positionals.length !== 1 || (command !== 'register' && command !== 'list')) {
    return usage(positionals.length === 0 ? 'which command? register or list' : `unknown command "${positionals.join(' ')}"`);
  }

  if (command === 'list') {
    const extra = Object.keys(values);
    if (extra.length > 0) return usage(`list takes no option (--${extra[0]})`);
    const store = await openStore();
    try {
      for (const c of await store.clients.list()) {
        process.stdout.write(`${c.id}\t${c.kind}\t${c.certified ? 'certified' : 'not-certified'}\t${c.name}\t${c.scopes}\n`);
      }
    } finally {
      await store.close();
    }
    return 0;
  }

  let input;
  try {
    for (const name of ['name', 'kind', 'jwks', 'scope'] as const) {
      if (values[name] === undefined) throw new UsageError(`register needs --${name}`);
    }
    input = {
      name: values.name as string,
      kind: values.kind as string,
      jwks: readJwks(values.jwks as string),
      scopes: values.scope as string,
      certified: values.certified === true,
      ...(values.organization !== undefined ? { organizationId: values.organization } : {}),
      ...(values.editor !== undefined ? { editor: values.editor } : {}),
      ...(values.description !== undefined ? { description: values.description } : {}),
      ...(values['certified-on'] !== undefined ? { certifiedOn: values['certified-on'] } : {}),
    };
  } catch (error) {
    if (error instanceof UsageError) return usage(error.message);
    throw error;
  }
  const store = await openStore();
  try {
    const client = await registerClient(store.clients, input);
    const keys = client.jwks.keys.map((k) => `${String(k.kid)} (${k.kty === 'EC' ? 'ES384' : 'RS384'})`).join(', ');
    process.stdout.write(
      `Registered ${client.kind} client "${client.name}", ${client.certified ? 'certified: it may get tokens and is listed in GET /apps' : 'not certified: it gets no token and is not listed'}\n` +
        `scopes: ${client.scopes}\n` +
        `keys: ${keys}\n` +
        (client.organizationId ? `organization: ${client.organizationId}\n` : '') +
        (client.editor ? `editor: ${client.editor}\n` : '') +
        (client.certifiedOn ? `certified on: ${client.certifiedOn}\n` : '') +
        dataOf(client.scopes).map((line) => `  ${line}\n`).join('') +
        `client id:\n${client.id}\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof ClientValidationError) return usage(error.message);
    throw error;
  } finally {
    await store.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`client: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
