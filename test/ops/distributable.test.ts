// `npm run check:distributable` (issue #19): the migrated schema and the write path follow the
// sharding plan of docs/SCALING.md, and the checks catch what would break it: a unique key
// or a foreign key without the distribution column, a foreign key into a distributed table,
// a write not routed by aggregate.
import path from 'node:path';
import test from 'ava';
import pg from 'pg';
import { checkSchema, checkWritePath, checkWrites, sqlTemplates } from '../../scripts/distributable.ts';
import { createTestDatabase } from '../helpers/database.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('the migrated schema follows the plan; a unique key, a foreign key without the distribution column fail it', async (t) => {
  const db = await createTestDatabase({ poolSize: 1 });
  t.teardown(() => db.drop());
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  t.teardown(() => client.end());
  t.deepEqual(await checkSchema(client), []);

  await client.query(`ALTER TABLE devices ADD COLUMN serial_number text UNIQUE`);
  await client.query(`CREATE UNIQUE INDEX streams_hash_idx ON streams (last_hash)`);
  await client.query(`CREATE TABLE device_notes (note_id uuid PRIMARY KEY, uuid text REFERENCES devices (uuid))`);
  await client.query(`ALTER TABLE snapshots ADD COLUMN stream_type text`);
  await client.query(`ALTER TABLE snapshots ADD CONSTRAINT snapshots_stream_fk FOREIGN KEY (stream_type, aggregate_id)
                      REFERENCES streams (aggregate_type, aggregate_id)`);
  await client.query(`CREATE UNIQUE INDEX streams_pair_idx ON streams (aggregate_id, aggregate_type)`);
  await client.query(`ALTER TABLE devices ADD COLUMN twin text`);
  await client.query(`ALTER TABLE devices ADD CONSTRAINT devices_twin_fk FOREIGN KEY (twin) REFERENCES devices (uuid)`);
  const problems = (await checkSchema(client)).map((v) => `${v.table}: ${v.problem}`);
  t.true(problems.some((p) => /^devices: unique key devices_serial_number_key \(serial_number\) lacks .*uuid/.test(p)));
  t.true(problems.some((p) => /^streams: unique index streams_hash_idx \(last_hash\) lacks .*aggregate_id/.test(p)));
  t.true(
    problems.some((p) =>
      /^device_notes: foreign key .* coordinator table points into the distributed table devices/.test(p)
    ),
  );
  t.true(problems.some((p) => /^devices: foreign key devices_twin_fk \(twin\)/.test(p)));
  // (aggregate_type, aggregate_id) → (aggregate_type, aggregate_id) pairs the columns: co-located
  t.false(problems.some((p) => /snapshots_stream_fk/.test(p)), problems.join('\n'));
  t.false(problems.some((p) => /streams_pair_idx/.test(p)));
  t.is(problems.length, 4, problems.join('\n'));
});

test('the write path routes every write of a distributed table by aggregate; a write that does not is named', async (t) => {
  const found = await checkWritePath(root);
  t.deepEqual(found.violations, []);
  // the append statement and the devices read model are among the writes found
  t.true(found.statements.some((s) => s.file === 'infra/event-store/event-store.ts' && s.table === 'events'));
  t.true(found.statements.some((s) => s.table === 'devices' && s.verb === 'UPDATE'));

  const source = [
    'const a = sql.type(row)`UPDATE devices SET is_active = false WHERE fleet_id = ${fleet}`;',
    'const b = sql.unsafe`UPDATE devices SET last_seen_at = ${at} WHERE uuid = ${uuid}`;',
    'const c = sql.fragment`INSERT INTO events (event_id, data) VALUES (${id}, ${sql.jsonb({ x: `y` })})`;',
    'const d = sql.fragment`DELETE FROM snapshots WHERE aggregate_id = ANY(${ids})`;',
    'const e = sql.fragment`INSERT INTO webhooks (id) VALUES (${id})`;',
  ].join('\n');
  t.is(sqlTemplates(source).length, 5);
  const checked = checkWrites('example.ts', source);
  t.deepEqual(checked.violations.map((v) => v.problem), [
    'example.ts:1: UPDATE devices does not name uuid (in a condition): it is not routed by aggregate',
    'example.ts:3: INSERT events does not name aggregate_id (in its column list): it is not routed by aggregate',
  ]);
  t.deepEqual(checked.statements.map((s) => [s.line, s.verb, s.table, s.shape]), [
    [2, 'UPDATE', 'devices', 'single'],
    [4, 'DELETE', 'snapshots', 'batch'],
  ]);
});
