// Settings read from the environment: the body limits (ordinary bodies and document pushes apart), the worker processes, rest-hook deliveries.
import t from 'tap';
import { loadConfig } from '../src/config.js';

t.test('documents (Bundles to the base, Binary content) get 80 MiB by default, other bodies 20 MiB', async (t) => {
  const config = loadConfig({});
  t.equal(config.bodyLimit, 20 * 1024 * 1024);
  t.equal(config.bundleBodyLimit, 80 * 1024 * 1024);
  t.ok(config.bundleBodyLimit > Math.ceil((50 * 1024 * 1024) / 3) * 4, 'a 50 MiB document fits once base64-encoded');
});

t.test('CARNET_BUNDLE_BODY_LIMIT sets the document limit; a bad value names the variable', async (t) => {
  t.equal(loadConfig({ CARNET_BUNDLE_BODY_LIMIT: '1048576' }).bundleBodyLimit, 1048576);
  t.throws(() => loadConfig({ CARNET_BUNDLE_BODY_LIMIT: '64MiB' }), /CARNET_BUNDLE_BODY_LIMIT/);
  t.throws(() => loadConfig({ CARNET_BUNDLE_BODY_LIMIT: '100' }), /CARNET_BUNDLE_BODY_LIMIT/);
});

t.test('CARNET_WORKERS: one process by default, 1 to 64, a bad value names the variable', async (t) => {
  t.equal(loadConfig({}).workers, 1);
  t.equal(loadConfig({ CARNET_WORKERS: '4' }).workers, 4);
  t.throws(() => loadConfig({ CARNET_WORKERS: '0' }), /CARNET_WORKERS/);
  t.throws(() => loadConfig({ CARNET_WORKERS: 'all' }), /CARNET_WORKERS/);
});

t.test('subscription settings: no internal destination, 10 s and 4 per origin by default; bad values name the variable', async (t) => {
  const config = loadConfig({});
  t.same(config.subscriptionAllow, []);
  t.equal(config.subscriptionTimeoutMs, 10_000);
  t.equal(config.subscriptionConcurrency, 4);
  t.same(loadConfig({ CARNET_SUBSCRIPTION_ALLOW: '127.0.0.1, 10.0.0.0/8,hooks.internal' }).subscriptionAllow, ['127.0.0.1', '10.0.0.0/8', 'hooks.internal']);
  t.throws(() => loadConfig({ CARNET_SUBSCRIPTION_ALLOW: '10.0.0.0/33' }), /CARNET_SUBSCRIPTION_ALLOW: "10.0.0.0\/33"/);
  t.throws(() => loadConfig({ CARNET_SUBSCRIPTION_ALLOW: 'http://x' }), /CARNET_SUBSCRIPTION_ALLOW/);
  t.equal(loadConfig({ CARNET_SUBSCRIPTION_TIMEOUT_MS: '2500' }).subscriptionTimeoutMs, 2500);
  t.throws(() => loadConfig({ CARNET_SUBSCRIPTION_TIMEOUT_MS: '10s' }), /CARNET_SUBSCRIPTION_TIMEOUT_MS/);
  t.equal(loadConfig({ CARNET_SUBSCRIPTION_CONCURRENCY: '8' }).subscriptionConcurrency, 8);
  t.throws(() => loadConfig({ CARNET_SUBSCRIPTION_CONCURRENCY: '0' }), /CARNET_SUBSCRIPTION_CONCURRENCY/);
  t.equal(loadConfig({}).notificationWindowSeconds, 3600, 'one notification per hour by default');
  t.equal(loadConfig({ CARNET_NOTIFICATION_WINDOW_S: '600' }).notificationWindowSeconds, 600);
  t.throws(() => loadConfig({ CARNET_NOTIFICATION_WINDOW_S: '0' }), /CARNET_NOTIFICATION_WINDOW_S/);
  t.equal(loadConfig({}).notificationPollMs, 2_000);
  t.equal(loadConfig({}).notificationLeaseMs, 30_000);
  t.throws(() => loadConfig({ CARNET_NOTIFICATION_LEASE_MS: '10' }), /CARNET_NOTIFICATION_LEASE_MS/);
  t.throws(() => loadConfig({ CARNET_NOTIFICATION_POLL_MS: 'soon' }), /CARNET_NOTIFICATION_POLL_MS/);
});
