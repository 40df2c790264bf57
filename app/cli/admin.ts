// `npm run admin -- <command>`: operator commands against the service's database.
// Commands register in `commands`; each parses its own flags.
import { parseArgs } from 'node:util';
import { createAdminTokens } from '../../infra/devices/credentials.ts';
import { type CliDatabase, openCliDatabase } from './cli-database.ts';
import { deadLettersCommand, listenersCommand } from './dead-letters.ts';
import { partitionsCommand, retentionCommand } from './partitions.ts';

type Command = { summary: string; usage: string; run: (db: CliDatabase, argv: string[]) => Promise<number> };

/**
 * Commands (and sub-commands) that only read: they refuse a database whose schema is behind
 * instead of migrating it (see cli-database.ts). The others apply pending migrations first.
 */
function readsOnly(name: string, argv: readonly string[]): boolean {
  if (name === 'list-tokens' || name === 'listeners' || name === 'partitions') return true;
  if (name === 'retention') return argv.includes('--dry-run');
  if (name === 'dead-letters') return argv[0] === 'list' || argv[0] === 'show';
  return false;
}

const commands: Record<string, Command> = {
  'create-token': {
    summary: 'create an admin token and print it (shown once)',
    usage: 'create-token --name <name>',
    async run(db, argv) {
      const { values } = parseArgs({ args: argv, options: { name: { type: 'string' } } });
      if (values.name === undefined || values.name.trim() === '') {
        console.error('create-token: --name <name> is required');
        return 2;
      }
      const created = await createAdminTokens(db.pool).create(values.name.trim());
      console.error(`created admin token "${created.name}" (id ${created.id}); it is shown only now:`);
      console.log(created.token);
      return 0;
    },
  },
  'list-tokens': {
    summary: 'list admin tokens (names and ids, never the secrets)',
    usage: 'list-tokens',
    async run(db) {
      for (const t of await createAdminTokens(db.pool).list()) {
        console.log(
          `${t.id}  ${t.name.padEnd(20)}  created ${t.created_at}${t.revoked_at ? `  REVOKED ${t.revoked_at}` : ''}`,
        );
      }
      return 0;
    },
  },
  'revoke-token': {
    summary: 'revoke admin tokens by id or name',
    usage: 'revoke-token <id|name>',
    async run(db, argv) {
      const which = argv[0];
      if (which === undefined) {
        console.error('revoke-token: give the token id or name');
        return 2;
      }
      const n = await createAdminTokens(db.pool).revoke(which);
      console.log(`revoked ${n} token(s)`);
      return n > 0 ? 0 : 1;
    },
  },
  'dead-letters': deadLettersCommand,
  listeners: listenersCommand,
  partitions: partitionsCommand,
  retention: retentionCommand,
};

/** Adds a command (used by modules that bring their own operator commands). */
export function registerAdminCommand(name: string, command: Command): void {
  commands[name] = command;
}

function help(): void {
  console.log('usage: npm run admin -- <command> [options]\n\ncommands:');
  for (const c of Object.values(commands)) console.log(`  ${c.usage.padEnd(34)} ${c.summary}`);
}

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === 'help') {
  help();
  process.exit(0);
}
const command = commands[name];
if (command === undefined) {
  console.error(`unknown command "${name}"`);
  help();
  process.exit(2);
}
const db = await openCliDatabase(undefined, { migrations: readsOnly(name, rest) ? 'require' : 'apply' });
let code = 1;
try {
  code = await command.run(db, rest);
} finally {
  await db.close();
}
process.exit(code);
