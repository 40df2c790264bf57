// `npm run fixtures:record [-- <scenario>…] [--out <dir>]`: re-records the fixtures from a real
// run. Each scenario (test/recording/record-scenarios.ts) gets a fresh database cloned from a migrated
// template, on the same PostgreSQL `npm test` would pick (DATABASE_URL → testcontainers →
// embedded), and drives the app over HTTP on a scripted clock. The device's events are then
// exported with `replay export` logic, the expectations written beside them, and every
// fixture is checked by replaying it before the command reports success.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { migrate } from '../../infra/postgres/migrate.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { exportDevice } from '../../replay/export-command.ts';
import { checkFixtureFile } from '../../replay/fixture-check.ts';
import { startRecording } from './record-session.ts';
import { scenarioApi, scenarios } from './record-scenarios.ts';
import { adminQuery, databaseUrl } from '../helpers/database.ts';
import { startScratchServer } from '../../infra/postgres/scratch-server.ts';

const { values, positionals } = parseArgs({
  options: { out: { type: 'string', default: 'fixtures' }, help: { type: 'boolean', short: 'h' } },
  allowPositionals: true,
});
if (values.help) {
  console.log(
    `usage: npm run fixtures:record [-- <scenario>…] [--out <dir>]\n\nscenarios:\n${
      scenarios.map((s) => `  ${s.name.padEnd(36)} ${s.description}`).join('\n')
    }`,
  );
  process.exit(0);
}
const unknown = positionals.filter((name) => !scenarios.some((s) => s.name === name));
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const chosen = positionals.length === 0 ? scenarios : scenarios.filter((s) => positionals.includes(s.name));
const outDir = values.out;
await mkdir(outDir, { recursive: true });

const started = Date.now();
const server = await startScratchServer(process.env, (line) => console.log(line));
const template = `devicetrail_fixtures_tpl_${process.pid}`;
let failed = 0;
try {
  await adminQuery(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`, server.adminUrl);
  await adminQuery(`CREATE DATABASE ${template}`, server.adminUrl);
  await migrate(databaseUrl(template, server.adminUrl));
  for (const scenario of chosen) {
    const name = `devicetrail_fixture_${process.pid}_${chosen.indexOf(scenario)}`;
    await adminQuery(`CREATE DATABASE ${name} TEMPLATE ${template}`, server.adminUrl);
    const pool = await createDatabasePool(databaseUrl(name, server.adminUrl), { maximumPoolSize: 4 });
    try {
      const session = await startRecording(pool, scenario.device, scenario.start);
      try {
        await scenario.run(scenarioApi(session, scenario.device));
      } finally {
        await session.close();
      }
      const fixture = path.join(outDir, `${scenario.name}.ndjson`);
      const lines: string[] = [];
      const count = await exportDevice(createReplayQueries(pool), scenario.device, {}, (line) => {
        lines.push(line);
      });
      await writeFile(fixture, lines.join(''));
      await writeFile(
        path.join(outDir, `${scenario.name}.expected.json`),
        `${JSON.stringify(session.sidecar(scenario.name, scenario.description), null, 2)}\n`,
      );
      const check = await checkFixtureFile(fixture);
      if (check.failures.length > 0) failed += 1;
      console.log(
        `${check.failures.length === 0 ? 'ok  ' : 'FAIL'} ${fixture}: ${count} events, ${check.checked} expectations${
          check.failures.length === 0 ? '' : `\n     ${check.failures.join('\n     ')}`
        }`,
      );
    } finally {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, server.adminUrl);
    }
  }
} finally {
  await adminQuery(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
}
const stray = (await readdir(outDir)).filter((f) =>
  f.endsWith('.ndjson') && !scenarios.some((s) => `${s.name}.ndjson` === f)
);
if (stray.length > 0) {
  console.log(`note: ${outDir}/ also holds ${stray.join(', ')}, which no scenario records (hand-kept or stale)`);
}
console.log(
  `${chosen.length - failed}/${chosen.length} scenario(s) recorded and verified in ${
    ((Date.now() - started) / 1000).toFixed(1)
  }s`,
);
process.exit(failed === 0 ? 0 : 1);
