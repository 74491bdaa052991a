// Owns FHIR R4 JSON-schema validation of a single resource, using the ajv validator that
// scripts/build-validators.mjs generates ahead of time. Knows nothing of HTTP or storage.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv';

/** One problem found in a resource; callers turn these into OperationOutcome issues. */
export interface SchemaIssue {
  /** FHIRPath-style location, rooted at the resource type: `Patient.name[0].given[1]`. */
  expression: string;
  diagnostics: string;
}

/** Shape of the function exported by generated/fhir-validators.cjs (ajv standalone code). */
interface GeneratedValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

const MAX_ISSUES = 50;
const MAX_QUOTED_VALUE = 80;

const require = createRequire(import.meta.url);

// Same depth from src/fhir/ (tests) and dist/fhir/ (after tsc), so one relative path serves both.
function loadGenerated<T>(relativePath: string): T {
  const path = fileURLToPath(new URL(relativePath, import.meta.url));
  try {
    return require(path) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String(err).includes(path)) {
      throw new Error(`FHIR validators not generated: ${path} is missing. Run \`npm run build:validators\` first.`);
    }
    throw err;
  }
}

const validateResource = loadGenerated<GeneratedValidator>('../../generated/fhir-validators.cjs');
const r4ResourceTypes: ReadonlySet<string> = new Set(loadGenerated<string[]>('../../generated/r4-resource-types.json'));

export function isR4ResourceType(name: string): boolean {
  return r4ResourceTypes.has(name);
}

/** Problems that make `resource` invalid FHIR R4 JSON; empty when it is valid. */
export function schemaIssues(resource: unknown): SchemaIssue[] {
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    return [{ expression: 'Resource', diagnostics: 'Expected a JSON object (a FHIR resource)' }];
  }
  const resourceType: unknown = (resource as { resourceType?: unknown }).resourceType;
  // Checked here rather than read from the discriminator error, so the message is specific.
  if (resourceType === undefined) {
    return [{ expression: 'resourceType', diagnostics: 'Missing resourceType' }];
  }
  if (typeof resourceType !== 'string' || !isR4ResourceType(resourceType)) {
    return [{ expression: 'resourceType', diagnostics: `Unknown FHIR R4 resource type ${quote(resourceType)}` }];
  }

  let valid: boolean;
  try {
    valid = validateResource(resource);
  } catch (err) {
    // Validation recurses with the data: thousands of nesting levels exhaust the stack.
    if (err instanceof RangeError) {
      return [{ expression: resourceType, diagnostics: 'Resource is nested too deeply to validate' }];
    }
    throw err;
  }
  if (valid) return [];

  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const error of validateResource.errors ?? []) {
    const issue = describe(error, resource, resourceType);
    const key = `${issue.expression}\u0000${issue.diagnostics}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
    if (issues.length >= MAX_ISSUES) break;
  }
  return issues;
}

function describe(error: ErrorObject, resource: object, resourceType: string): SchemaIssue {
  const { expression, value } = locate(error.instancePath, resource, resourceType);
  const params = error.params as Record<string, unknown>;
  const fhirType = primitiveTypeOf(error.schemaPath);

  switch (error.keyword) {
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      return { expression: `${expression}.${member(name)}`, diagnostics: `Unknown element '${name}'` };
    }
    case 'required': {
      const name = String(params.missingProperty);
      return { expression: `${expression}.${member(name)}`, diagnostics: `Missing required element '${name}'` };
    }
    case 'type': {
      const expected = `Expected ${article(String(params.type))}${fhirType ? ` (FHIR ${fhirType})` : ''}`;
      return { expression, diagnostics: `${expected}, got ${jsonTypeOf(value)}` };
    }
    case 'pattern':
    case 'minimum':
    case 'maximum':
      return {
        expression,
        diagnostics: fhirType
          ? `Not a valid FHIR ${fhirType}: ${quote(value)}`
          : `Value ${quote(value)} does not match the required format`,
      };
    case 'enum': {
      const allowed = Array.isArray(params.allowedValues) ? params.allowedValues.map(String).join(', ') : '';
      return { expression, diagnostics: `Invalid code ${quote(value)}; expected one of: ${allowed}` };
    }
    case 'discriminator': {
      // A contained or Bundle-entry resource: the outer resource was already checked above.
      const tag = (value as { resourceType?: unknown } | undefined)?.resourceType;
      return {
        expression: `${expression}.resourceType`,
        diagnostics:
          tag === undefined ? `Missing required element 'resourceType'` : `Unknown FHIR R4 resource type ${quote(tag)}`,
      };
    }
    default: // no other keyword occurs in the schema today
      return { expression, diagnostics: `Failed schema rule '${error.keyword}'` };
  }
}

/**
 * Turns an ajv JSON pointer into a FHIRPath-style expression, walking the data alongside
 * it so array indexes are told from property names by what the data is, not by the text.
 */
function locate(instancePath: string, resource: object, resourceType: string): { expression: string; value: unknown } {
  let expression = resourceType;
  let value: unknown = resource;
  if (instancePath === '') return { expression, value };
  for (const raw of instancePath.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(value)) {
      expression += `[${segment}]`;
      value = value[Number(segment)];
    } else {
      expression += `.${member(segment)}`;
      value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[segment] : undefined;
    }
  }
  return { expression, value };
}

/**
 * The FHIR primitive whose rule failed, when the error came from one. ajv inlines the
 * primitive definitions (they hold no $ref), so their errors keep a schemaPath like
 * `#/definitions/date/pattern`; complex types and resources start with a capital letter.
 */
function primitiveTypeOf(schemaPath: string): string | undefined {
  return /^#\/definitions\/([a-z][A-Za-z0-9]*)\/[a-zA-Z]+$/.exec(schemaPath)?.[1];
}

/** A FHIRPath member name: names that are not plain identifiers are quoted with backticks. */
function member(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `\`${name.replace(/[`\\]/g, '\\$&')}\``;
}

function article(jsonType: string): string {
  return /^[aeiou]/.test(jsonType) ? `an ${jsonType}` : `a ${jsonType}`;
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${article(typeof value)} (${quote(value)})`;
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_QUOTED_VALUE ? `${text.slice(0, MAX_QUOTED_VALUE)}…` : text;
}
