// cli/token: `npm run -s token -- <kind> ...` prints one development token (a signed JWT) for
// local testing, signed with the development issuer's key in CARNET_DATA_DIR/keys (created if
// missing; the server trusts it unless NODE_ENV=production). Refuses to run in production.

import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { ORGANISATION_ROLES, type OrganisationRole } from '../auth/actor.js';
import { developmentToken, DEFAULT_SCOPES, type DevelopmentActor } from '../auth/dev-tokens.js';
import { KEY_NAMES, loadOrCreateKey } from '../auth/keys.js';

const USAGE = `Usage: npm run -s token -- <kind> [options]

Prints one development token (a signed JWT) on stdout.

  patient         --patient <id> [--client <id>]   (--client: a token issued to that app of
                  the catalogue; it works only while the patient grants the app)
  representative  --related-person <id> --patient <id> [--patient <id>...]
  practitioner    --practitioner <id> --profession <code> [--specialty <code>]
                  [--purpose TREAT|ETREAT] [--rpps <number>] [--organization <id>] [--patient <id>]
  system          --client <id> [--organization <id>]
  insurer         --organization <id> [--role ${ORGANISATION_ROLES.join('|')}]

Common options:
  --scope "<scopes>"   instead of the kind's default (${Object.entries(DEFAULT_SCOPES)
    .map(([k, v]) => `${k === 'organisation' ? 'insurer' : k}: ${v}`)
    .join(', ')})
  --ttl <seconds>      lifetime (default 3600)
  --audience <url>     aud (default: the FHIR base URL, CARNET_BASE_URL or http://HOST:PORT/fhir)

Example: curl -H "Authorization: Bearer $(npm run -s token -- patient --patient p1)" http://127.0.0.1:8080/fhir/Patient/p1
`;

const OPTIONS = {
  patient: { type: 'string', multiple: true },
  'related-person': { type: 'string' },
  practitioner: { type: 'string' },
  profession: { type: 'string' },
  specialty: { type: 'string' },
  purpose: { type: 'string' },
  rpps: { type: 'string' },
  organization: { type: 'string' },
  client: { type: 'string' },
  role: { type: 'string' },
  scope: { type: 'string' },
  ttl: { type: 'string' },
  audience: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };

/** The options each kind accepts, besides scope, ttl and audience. */
const ACCEPTS: Record<string, (keyof typeof OPTIONS)[]> = {
  patient: ['patient', 'client'],
  representative: ['related-person', 'patient'],
  practitioner: ['practitioner', 'profession', 'specialty', 'purpose', 'rpps', 'organization', 'patient'],
  system: ['client', 'organization'],
  insurer: ['organization', 'role'],
};
const COMMON: (keyof typeof OPTIONS)[] = ['scope', 'ttl', 'audience', 'help'];

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

class UsageError extends Error {}

function id(values: Values, name: 'related-person' | 'practitioner' | 'organization' | 'client'): string {
  const value = values[name];
  if (value === undefined) throw new UsageError(`--${name} <id> is required`);
  if (!FHIR_ID.test(value)) throw new UsageError(`--${name} "${value}" is not a FHIR id (letters, digits, - and ., at most 64)`);
  return value;
}

function optionalId(values: Values, name: 'organization' | 'rpps'): string | undefined {
  const value = values[name];
  if (value !== undefined && !FHIR_ID.test(value)) throw new UsageError(`--${name} "${value}" is not a valid identifier`);
  return value;
}

function patients(values: Values, min: number, max: number): string[] {
  const list = values.patient ?? [];
  if (list.length < min) throw new UsageError('--patient <id> is required');
  if (list.length > max) throw new UsageError('--patient may be given only once here');
  for (const p of list) if (!FHIR_ID.test(p)) throw new UsageError(`--patient "${p}" is not a FHIR id`);
  return list;
}

function actorOf(kind: string, values: Values): DevelopmentActor {
  const accepted = ACCEPTS[kind];
  if (!accepted) throw new UsageError(`unknown kind "${kind}"; one of ${Object.keys(ACCEPTS).join(', ')}`);
  for (const name of Object.keys(values) as (keyof typeof OPTIONS)[]) {
    if (!accepted.includes(name) && !COMMON.includes(name)) throw new UsageError(`--${name} does not apply to a ${kind} token`);
  }
  switch (kind) {
    case 'patient':
      return { kind: 'patient', patientId: patients(values, 1, 1)[0], ...(values.client !== undefined ? { clientId: id(values, 'client') } : {}) };
    case 'representative':
      return { kind: 'representative', relatedPersonId: id(values, 'related-person'), patientIds: patients(values, 1, Infinity) };
    case 'practitioner': {
      const profession = values.profession;
      if (!profession || !/^[A-Za-z0-9\-.]{1,32}$/.test(profession)) throw new UsageError('--profession <code> is required (e.g. 10 physician, 21 pharmacist)');
      const purpose = values.purpose ?? 'TREAT';
      if (purpose !== 'TREAT' && purpose !== 'ETREAT') throw new UsageError(`--purpose must be TREAT or ETREAT, not "${purpose}"`);
      const specialty = values.specialty;
      if (specialty !== undefined && !/^[A-Za-z0-9\-.]{1,32}$/.test(specialty)) throw new UsageError(`--specialty "${specialty}" is not a code`);
      const rpps = optionalId(values, 'rpps');
      const organizationId = optionalId(values, 'organization');
      const [patientId] = patients(values, 0, 1);
      return {
        kind: 'practitioner',
        practitionerId: id(values, 'practitioner'),
        profession,
        purposeOfUse: purpose,
        ...(specialty ? { specialty } : {}),
        ...(rpps ? { rpps } : {}),
        ...(organizationId ? { organizationId } : {}),
        ...(patientId ? { patientId } : {}),
      };
    }
    case 'system': {
      const organizationId = optionalId(values, 'organization');
      return { kind: 'system', clientId: id(values, 'client'), ...(organizationId ? { organizationId } : {}) };
    }
    default: {
      const role = (values.role ?? 'mandatory-insurer') as OrganisationRole;
      if (!ORGANISATION_ROLES.includes(role)) throw new UsageError(`--role must be one of ${ORGANISATION_ROLES.join(', ')}`);
      return { kind: 'organisation', organizationId: id(values, 'organization'), role };
    }
  }
}

async function main(argv: string[]): Promise<number> {
  let kind: string;
  let values: Values;
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    values = parsed.values as Values;
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new UsageError(parsed.positionals.length === 0 ? 'which kind of token?' : `one kind only, not "${parsed.positionals.join(' ')}"`);
    kind = parsed.positionals[0];
  } catch (error) {
    process.stderr.write(`token: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env);
  if (config.production) {
    process.stderr.write('token: development tokens are refused when NODE_ENV=production (the server does not trust them there)\n');
    return 1;
  }
  let actor: DevelopmentActor;
  let ttl = 3600;
  try {
    actor = actorOf(kind, values);
    if (values.ttl !== undefined) {
      ttl = Number(values.ttl);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 31 * 24 * 3600) throw new UsageError(`--ttl must be a number of seconds between 1 and ${31 * 24 * 3600}`);
    }
    if (values.scope !== undefined && values.scope.trim() === '') throw new UsageError('--scope must not be empty');
    if (values.audience !== undefined && !/^https?:\/\/\S+$/.test(values.audience)) throw new UsageError('--audience must be an http(s) URL');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`token: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  const key = await loadOrCreateKey(config.dataDir, KEY_NAMES.development);
  const token = await developmentToken(key, values.audience ?? config.baseUrl, actor, values.scope?.trim(), ttl);
  process.stdout.write(`${token}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`token: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
