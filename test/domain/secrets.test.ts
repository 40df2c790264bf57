// Secrets as markers (issue #15, item 3): the domain walks targets, reports and events and
// hashes with the function it is given; drift still sees a changed secret, and not a kept one.
import { Buffer } from 'node:buffer';
import { createHmac } from 'node:crypto';
import test from 'ava';
import { computeDrift } from '../../domain/device/drift.ts';
import {
  hashAppsSecrets,
  hashConfigSecrets,
  hashEventSecrets,
  hashTargetSecrets,
  isSecretConfigKey,
  isSecretMarker,
  revealTargetSecrets,
  secretMatches,
  targetSecretMarkers,
} from '../../domain/device/secrets.ts';
import type { TargetState } from '../../domain/device/events.ts';
import { createSecretHasher } from '../../infra/secrets/hasher.ts';

const key = Buffer.alloc(32, 7);
const { hash, keyId } = createSecretHasher(key);
const other = createSecretHasher(Buffer.alloc(32, 8));

const target = (password: string, token = 'tok-1'): TargetState => ({
  apps: {
    '1': { services: [{ serviceName: 'db', image: 'pg:16', environment: { PGPASSWORD: password, PGPORT: 5432 } }] },
  },
  config: { API_TOKEN: token, log_level: 'info' },
});
const reported = (password: string, token = 'tok-1') => ({
  apps: {
    '1': {
      services: {
        db: { status: 'running', image: 'pg:16', config: { environment: { PGPASSWORD: password, PGPORT: 5432 } } },
      },
    },
  },
  config: { API_TOKEN: token, log_level: 'info' },
});
const hashedReport = (password: string, token?: string) => {
  const r = reported(password, token);
  return { apps: hashAppsSecrets(r.apps, hash), config: hashConfigSecrets(r.config, hash) };
};

test('a marker is HMAC-SHA256 under the key, named by the key id; the same value gives the same marker', (t) => {
  const marker = hash('hunter2');
  t.true(isSecretMarker(marker));
  t.is(marker, `hmac-sha256:${keyId}:${createHmac('sha256', key).update('s:hunter2').digest('hex')}`);
  t.is(hash('hunter2'), marker);
  t.not(hash('hunter3'), marker);
  t.not(other.hash('hunter2'), marker, 'another key, another marker');
  t.not(other.keyId, keyId);
  t.not(hash(1), hash('1'), 'the JSON type counts');
  t.throws(() => createSecretHasher(Buffer.alloc(16)), { message: /at least 32 bytes/ });
});

test('config keys are secret by the documented pattern', (t) => {
  for (const k of ['DB_PASSWORD', 'apiKey', 'private_cert', 'SECRET', 'auth_token', 'AWS_CREDENTIALS', 'passphrase']) {
    t.true(isSecretConfigKey(k), k);
  }
  for (const k of ['log_level', 'HOSTNAME', 'RESIN_SUPERVISOR_POLL_INTERVAL']) t.false(isSecretConfigKey(k), k);
});

test('a target keeps its shape with every environment value and secret config value as a marker, once', (t) => {
  const found = new Map<string, unknown>();
  const hashed = hashTargetSecrets(target('hunter2'), hash, (m, v) => found.set(m, v));
  const service = hashed.apps['1']!.services![0]! as unknown as { environment: Record<string, unknown> };
  t.is(service.environment['PGPASSWORD'], hash('hunter2'));
  t.is(service.environment['PGPORT'], hash(5432));
  t.is(hashed.config['API_TOKEN'], hash('tok-1'));
  t.is(hashed.config['log_level'], 'info');
  t.deepEqual([...found.values()].sort(), [5432, 'hunter2', 'tok-1'].sort());
  t.is(hashTargetSecrets(hashed, hash), hashed, 'hashing a hashed target changes nothing');
  t.false(JSON.stringify(hashed).includes('hunter2'));
  // what the device gets back, and without an erased value
  const values = new Map(found);
  t.deepEqual(revealTargetSecrets(hashed, (m) => values.get(m)), target('hunter2'));
  values.delete(hash('hunter2'));
  const revealed = revealTargetSecrets(hashed, (m) => values.get(m));
  t.deepEqual(revealed.apps['1']!.services![0]!['environment'], { PGPORT: 5432 });
  t.is(targetSecretMarkers(hashed).length, 3);
});

test('events: old targets and reports read with markers; other events untouched', (t) => {
  const data = {
    version: 1,
    new_state: target('hunter2'),
    old_state: target('older'),
    apps_added: [],
    apps_removed: [],
    apps_count: 1,
  };
  const hashed = hashEventSecrets('target_state.updated', data, hash);
  t.false(JSON.stringify(hashed).includes('hunter2'));
  t.false(JSON.stringify(hashed).includes('older'));
  const report = { ...reported('hunter2'), system: {}, resources: {}, apps_count: 1 };
  t.false(JSON.stringify(hashEventSecrets('current_state.updated', report, hash)).includes('hunter2'));
  const online = { changed_at: 'x', reason: 'hunter2' };
  t.is(hashEventSecrets('device.online', online, hash), online);
});

test('drift: the same secret under the same key is in sync; a changed one drifts, by its marker', (t) => {
  const want = hashTargetSecrets(target('hunter2'), hash);
  t.true(computeDrift(want, hashedReport('hunter2')).in_sync);
  const changed = computeDrift(want, hashedReport('hunter3'));
  t.false(changed.in_sync);
  t.deepEqual(changed.services, [{
    app_id: '1',
    service_name: 'db',
    problem: 'wrong_environment',
    expected: `PGPASSWORD=${hash('hunter2')}`,
    actual: `PGPASSWORD=${hash('hunter3')}`,
  }]);
  const token = computeDrift(want, hashedReport('hunter2', 'tok-2'));
  t.deepEqual(token.config_differs, ['API_TOKEN']);
  t.false(token.in_sync);
  const withoutEnv = { apps: { '1': { services: { db: { status: 'running', image: 'pg:16' } } } } };
  t.true(computeDrift(want, withoutEnv).in_sync, 'a device that reports no environment is not compared on it');
});

test('secretMatches: each target marker beside the reported one', (t) => {
  const want = hashTargetSecrets(target('hunter2'), hash);
  const matches = secretMatches(want, hashedReport('hunter3'));
  t.deepEqual(matches.map((m) => [m.name, m.matched, m.reported === null]), [
    ['PGPASSWORD', false, false],
    ['PGPORT', true, false],
    ['API_TOKEN', true, false],
  ]);
});
