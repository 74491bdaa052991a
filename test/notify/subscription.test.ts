// notify/subscription: a Subscription is checked against the R4 backport profile and Carnet's
// topics, and comes out as a SubscriptionSpec; every problem is a 422 issue naming its element.
import t, { type Test } from 'tap';
import type { Subscription } from '@medplum/fhirtypes';
import { FhirError } from '../../src/base/outcome.js';
import { EXTENSIONS, initialStatus, parseHeader, validateSubscription } from '../../src/notify/subscription.js';
import { loadTopics, TOPIC_BASE } from '../../src/notify/topics.js';

const topics = loadTopics();

function subscription(overrides: Record<string, unknown> = {}, channel: Record<string, unknown> = {}): Subscription {
  return {
    resourceType: 'Subscription',
    id: 's1',
    status: 'requested',
    reason: 'new documents',
    criteria: `${TOPIC_BASE}document`,
    _criteria: { extension: [{ url: EXTENSIONS.filterCriteria, valueString: 'DocumentReference?patient=Patient/123' }] },
    channel: {
      type: 'rest-hook',
      endpoint: 'https://hooks.example.org/carnet',
      header: ['Authorization: Bearer secret-value'],
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: EXTENSIONS.payloadContent, valueCode: 'id-only' }] },
      extension: [
        { url: EXTENSIONS.heartbeatPeriod, valueUnsignedInt: 60 },
        { url: EXTENSIONS.timeout, valueUnsignedInt: 5 },
        { url: EXTENSIONS.maxCount, valuePositiveInt: 20 },
      ],
      ...channel,
    },
    ...overrides,
  } as Subscription;
}

/** The issues of the 422 a Subscription gets. */
function refusal(t: Test, resource: Subscription): { diagnostics: string; expression?: string[]; code: string }[] {
  try {
    validateSubscription(resource, topics);
  } catch (error) {
    t.ok(error instanceof FhirError && error.status === 422, 'a 422');
    return (error as FhirError).issues;
  }
  t.fail('the Subscription was accepted');
  return [];
}

t.test('a valid backport Subscription becomes a SubscriptionSpec', async (t) => {
  t.same(validateSubscription(subscription(), topics), {
    id: 's1',
    status: 'requested',
    topic: `${TOPIC_BASE}document`,
    filters: [{ resourceType: 'DocumentReference', criteria: [{ parameter: 'patient', values: ['Patient/123'] }] }],
    channel: 'rest-hook',
    endpoint: 'https://hooks.example.org/carnet',
    headers: [{ name: 'Authorization', value: 'Bearer secret-value' }],
    mimeType: 'application/fhir+json',
    content: 'id-only',
    heartbeatSeconds: 60,
    timeoutSeconds: 5,
    maxCount: 20,
  });
  const ws = validateSubscription(subscription({ _criteria: undefined }, { type: 'websocket', endpoint: undefined, header: undefined, extension: undefined, payload: 'application/json;fhirVersion=4.0' }), topics);
  t.equal(ws.channel, 'websocket');
  t.equal(ws.endpoint, undefined);
  t.equal(ws.mimeType, 'application/json');
  t.same(ws.filters, []);
  t.equal(initialStatus('rest-hook'), 'requested');
  t.equal(initialStatus('websocket'), 'active');
});

t.test('an unknown topic is refused, naming Subscription.criteria', async (t) => {
  const issues = refusal(t, subscription({ criteria: 'https://carnet.example.org/fhir/SubscriptionTopic/nothing', _criteria: undefined }));
  t.equal(issues.length, 1);
  t.same(issues[0].expression, ['Subscription.criteria']);
  t.match(issues[0].diagnostics, /not a topic this server offers/);
  t.same(refusal(t, subscription({ criteria: undefined, _criteria: undefined }))[0].expression, ['Subscription.criteria']);
});

t.test("filters may use only the topic's declared filter parameters", async (t) => {
  const bad = (valueString: string) => refusal(t, subscription({ _criteria: { extension: [{ url: EXTENSIONS.filterCriteria, valueString }] } }));
  t.match(bad('DocumentReference?status=current')[0].diagnostics, /cannot be filtered on DocumentReference\?status/);
  t.match(bad('Appointment?patient=Patient/1')[0].diagnostics, /cannot be filtered on Appointment\?patient/);
  t.match(bad('patient=Patient/1')[0].diagnostics, /ResourceType\?param=value/);
  t.same(bad('DocumentReference?nope=1')[0].expression, ['Subscription.criteria.extension[0]']);
});

t.test('only rest-hook and websocket channels', async (t) => {
  for (const type of ['email', 'sms', 'message']) {
    const issues = refusal(t, subscription({}, { type, endpoint: 'mailto:someone@example.org' }));
    t.same(issues.map((i) => i.expression?.[0]), ['Subscription.channel.type'], type);
  }
  const custom = refusal(t, subscription({}, { _type: { extension: [{ url: EXTENSIONS.channelType, valueCoding: { code: 'zulip' } }] } }));
  t.match(custom[0].diagnostics, /custom channel types/);
});

t.test('a rest-hook endpoint is an absolute http(s) URL without credentials; full-resource needs https', async (t) => {
  const endpointIssue = (endpoint: unknown) => refusal(t, subscription({}, { endpoint }))[0];
  t.match(endpointIssue(undefined).diagnostics, /needs Subscription.channel.endpoint/);
  t.match(endpointIssue('/relative/path').diagnostics, /absolute http or https/);
  t.match(endpointIssue('ftp://example.org/x').diagnostics, /absolute http or https/);
  t.match(endpointIssue('https://user:pw@example.org/x').diagnostics, /credentials/);
  t.equal(validateSubscription(subscription({}, { endpoint: 'http://hooks.example.org/x' }), topics).endpoint, 'http://hooks.example.org/x', 'plain http with id-only');
  const full = { _payload: { extension: [{ url: EXTENSIONS.payloadContent, valueCode: 'full-resource' }] } };
  t.match(refusal(t, subscription({}, { endpoint: 'http://hooks.example.org/x', ...full }))[0].diagnostics, /full-resource content is not sent over plain http/);
  t.equal(validateSubscription(subscription({}, full), topics).content, 'full-resource');
});

t.test('payload: a JSON MIME type and exactly one content extension (the profile requires it)', async (t) => {
  t.match(refusal(t, subscription({}, { payload: 'application/fhir+xml' }))[0].diagnostics, /not supported/);
  t.match(refusal(t, subscription({}, { payload: undefined }))[0].diagnostics, /payload is required/);
  t.match(refusal(t, subscription({}, { _payload: undefined }))[0].diagnostics, /exactly one .*backport-payload-content/);
  t.match(refusal(t, subscription({}, { _payload: { extension: [{ url: EXTENSIONS.payloadContent, valueCode: 'everything' }] } }))[0].diagnostics, /not empty, id-only or full-resource/);
});

t.test('headers are Name: value lines, never framing headers; numbers stay within bounds; every problem is reported at once', async (t) => {
  t.same(parseHeader('X-Api-Key:  abc '), { name: 'X-Api-Key', value: 'abc' });
  t.equal(parseHeader('no colon'), undefined);
  t.equal(parseHeader('Content-Length: 1'), undefined);
  t.equal(parseHeader('Host: internal'), undefined);
  t.equal(parseHeader('X-A: b\r\nX-B: c'), undefined);
  const issues = refusal(
    t,
    subscription(
      { status: 'paused', criteria: `${TOPIC_BASE}nothing`, _criteria: undefined },
      {
        header: ['Content-Type: text/plain'],
        extension: [
          { url: EXTENSIONS.heartbeatPeriod, valueUnsignedInt: 1 },
          { url: EXTENSIONS.timeout, valueUnsignedInt: 100000 },
          { url: EXTENSIONS.maxCount, valuePositiveInt: 0 },
        ],
      },
    ),
  );
  t.same(
    issues.map((i) => i.expression?.[0]),
    [
      'Subscription.status',
      'Subscription.criteria',
      'Subscription.channel.header[0]',
      `Subscription.channel.extension(${EXTENSIONS.heartbeatPeriod})`,
      `Subscription.channel.extension(${EXTENSIONS.timeout})`,
      `Subscription.channel.extension(${EXTENSIONS.maxCount})`,
    ],
  );
});
