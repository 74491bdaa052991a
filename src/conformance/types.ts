// conformance/types: the part of the R4 TestScript and TestReport resources the runner reads and
// writes (https://hl7.org/fhir/R4/testscript.html, https://hl7.org/fhir/R4/testreport.html).
// Nothing in the server imports src/conformance.

export interface Coding {
  system?: string;
  code?: string;
}

export interface Fixture {
  id: string;
  autocreate?: boolean;
  autodelete?: boolean;
  resource?: { reference?: string };
}

export interface Variable {
  name: string;
  defaultValue?: string;
  expression?: string;
  headerField?: string;
  path?: string;
  sourceId?: string;
  hint?: string;
  description?: string;
}

export interface RequestHeader {
  field: string;
  value: string;
}

export interface Operation {
  type?: Coding;
  resource?: string;
  label?: string;
  description?: string;
  accept?: string;
  contentType?: string;
  destination?: number;
  encodeRequestUrl?: boolean;
  method?: 'delete' | 'get' | 'options' | 'patch' | 'post' | 'put' | 'head';
  origin?: number;
  params?: string;
  requestHeader?: RequestHeader[];
  requestId?: string;
  responseId?: string;
  sourceId?: string;
  targetId?: string;
  url?: string;
}

export type AssertOperator = 'equals' | 'notEquals' | 'in' | 'notIn' | 'greaterThan' | 'lessThan' | 'empty' | 'notEmpty' | 'contains' | 'notContains' | 'eval';

export interface Assert {
  label?: string;
  description?: string;
  direction?: 'response' | 'request';
  compareToSourceId?: string;
  compareToSourceExpression?: string;
  compareToSourcePath?: string;
  contentType?: string;
  expression?: string;
  headerField?: string;
  minimumId?: string;
  navigationLinks?: boolean;
  operator?: AssertOperator;
  path?: string;
  requestMethod?: string;
  requestURL?: string;
  resource?: string;
  response?: string;
  responseCode?: string;
  sourceId?: string;
  validateProfileId?: string;
  value?: string;
  warningOnly?: boolean;
}

export interface Action {
  operation?: Operation;
  assert?: Assert;
}

export interface TestScript {
  resourceType: 'TestScript';
  id?: string;
  url?: string;
  name: string;
  title?: string;
  status?: string;
  description?: string;
  contained?: Array<Record<string, unknown> & { resourceType: string; id?: string }>;
  fixture?: Fixture[];
  variable?: Variable[];
  setup?: { action: Action[] };
  test?: Array<{ id?: string; name?: string; description?: string; action: Action[] }>;
  teardown?: { action: Array<{ operation: Operation }> };
}

export type ActionResultCode = 'pass' | 'skip' | 'fail' | 'warning' | 'error';

export interface ActionResult {
  result: ActionResultCode;
  message?: string;
  detail?: string;
}

export interface ReportAction {
  operation?: ActionResult;
  assert?: ActionResult;
}

export interface TestReport {
  resourceType: 'TestReport';
  id?: string;
  name?: string;
  status: 'completed' | 'in-progress' | 'waiting' | 'stopped' | 'entered-in-error';
  testScript: { reference?: string; display?: string };
  result: 'pass' | 'fail' | 'pending';
  score?: number;
  tester?: string;
  issued?: string;
  participant?: Array<{ type: 'test-engine' | 'client' | 'server'; uri: string; display?: string }>;
  setup?: { action: ReportAction[] };
  test?: Array<{ name?: string; description?: string; action: ReportAction[] }>;
  teardown?: { action: Array<{ operation: ActionResult }> };
}

/** A response (or request) the asserts look at. */
export interface Exchange {
  method: string;
  url: string;
  status: number;
  requestHeaders: Record<string, string>;
  requestBody?: unknown;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json?: unknown;
}
