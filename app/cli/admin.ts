// `npm run admin -- <command>`: operator commands against the service's database.
// Commands register in `commands`; each parses its own flags.
import { createTokenCommand, listTokensCommand, revokeTokenCommand, rotateTokenCommand } from './admin-tokens.ts';
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
  'create-token': createTokenCommand,
  'list-tokens': listTokensCommand,
  'revoke-token': revokeTokenCommand,
  'rotate-token': rotateTokenCommand,
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
