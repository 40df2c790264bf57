// `replay check [files…]`: replays fixtures and checks them against their expected states.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { type Command, commonOptions, printJson } from './command.ts';
import { checkFixtureFile } from './fixture-check.ts';
import { palette } from './text.ts';

/** Every fixture file in a directory, sorted. */
export async function listFixtures(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => /\.ndjson(\.gz)?$/.test(f)).sort().map((f) => path.join(dir, f));
}

/** The check command. */
export const checkCommand: Command = {
  name: 'check',
  summary:
    'Replays fixtures through the domain and checks every expected state in their sidecars (<name>.expected.json); exit code 1 if any fails.',
  usage: 'check [<fixture.ndjson>…] [--dir <dir>] [--json]',
  help: `options:
  --dir <dir>        check every *.ndjson in this directory (default: fixtures/ when no file is given)
  --json             print the results as JSON
  -h, --help         this help

example:
  npm run replay -- check fixtures/drift-and-recovery.ndjson`,
  options: { json: commonOptions['json']!, help: commonOptions['help']!, dir: { type: 'string' } },
  positionals: 1_000,
  async run(ctx, values, positionals) {
    const files = positionals.length > 0
      ? positionals
      : await listFixtures(typeof values['dir'] === 'string' ? values['dir'] : 'fixtures');
    const results = [];
    for (const file of files) results.push(await checkFixtureFile(file));
    const failed = results.filter((r) => r.failures.length > 0);
    if (values['json'] === true) printJson(ctx, results);
    else {
      const c = palette(ctx.stdout.isTTY);
      for (const r of results) {
        ctx.stdout.write(
          `${
            r.failures.length === 0 ? c.green('ok  ') : c.red('FAIL')
          } ${r.fixture} (${r.scenario}): ${r.checked} expectation(s)\n`,
        );
        for (const f of r.failures) ctx.stdout.write(`     ${f}\n`);
      }
      ctx.stdout.write(`${results.length - failed.length}/${results.length} fixture(s) pass\n`);
    }
    return failed.length === 0 && results.length > 0 ? 0 : 1;
  },
};
