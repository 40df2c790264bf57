// Operator commands for listeners (registered in app/cli/admin.ts):
//   npm run admin -- dead-letters list [--listener N] [--status S] [--limit N] [--json]
//   npm run admin -- dead-letters show <id>
//   npm run admin -- dead-letters redeliver <id>... | --listener N | --all
//   npm run admin -- dead-letters discard <id>... | --listener N | --all
//   npm run admin -- listeners [--json]
// Redelivery marks letters for the running listener of that name, which retries them next
// (woken by NOTIFY); the CLI itself cannot run a listener's handlers.
import { parseArgs } from 'node:util';
import type { DatabasePool } from 'slonik';
import {
  type DeadLetter,
  type DeadLetterSelection,
  discardDeadLetters,
  listDeadLetters,
  listenerStatuses,
  requestRedelivery,
} from '../../infra/realtime/listener-store.ts';

type Command = { summary: string; usage: string; run: (db: { pool: DatabasePool }, argv: string[]) => Promise<number> };

const STATUSES = ['dead', 'redeliver', 'redelivered', 'discarded'] as const;

function firstLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 100 ? `${line.slice(0, 99)}…` : line;
}

function printLetter(l: DeadLetter): void {
  console.log(
    `${String(l.id).padStart(6)}  ${l.status.padEnd(11)}  ${l.listener_name.padEnd(16)}  ${
      l.event_type.padEnd(24)
    }  ${l.aggregate_id}  attempts ${l.attempts}  last ${l.last_failed_at}  ${firstLine(l.error)}`,
  );
}

/** Parses `<id>... | --listener N | --all` into a selection; null (with a message) when unusable. */
function selection(verb: string, argv: string[]): DeadLetterSelection | null {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { listener: { type: 'string' }, all: { type: 'boolean' } },
  });
  const ids = positionals.map(Number);
  if (ids.some((id) => !Number.isSafeInteger(id) || id <= 0)) {
    console.error(
      `dead-letters ${verb}: ids are positive integers (see "dead-letters list"), got ${positionals.join(' ')}`,
    );
    return null;
  }
  if (ids.length === 0 && values.listener === undefined && values.all !== true) {
    console.error(`dead-letters ${verb}: give dead letter ids, --listener <name>, or --all`);
    return null;
  }
  return {
    ...(ids.length > 0 ? { ids } : {}),
    ...(values.listener === undefined ? {} : { listener: values.listener }),
  };
}

async function deadLetters(db: { pool: DatabasePool }, argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'list': {
      const { values } = parseArgs({
        args: rest,
        options: {
          listener: { type: 'string' },
          status: { type: 'string' },
          limit: { type: 'string' },
          json: { type: 'boolean' },
        },
      });
      const status = values.status as DeadLetter['status'] | undefined;
      if (status !== undefined && !STATUSES.includes(status)) {
        console.error(`dead-letters list: --status is one of ${STATUSES.join(', ')}`);
        return 2;
      }
      const limit = values.limit === undefined ? 50 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
        console.error('dead-letters list: --limit is an integer from 1 to 10000');
        return 2;
      }
      const letters = await listDeadLetters(db.pool, { listener: values.listener, status, limit });
      if (values.json === true) {
        console.log(JSON.stringify(letters, null, 2));
        return 0;
      }
      if (letters.length === 0) console.log('no dead letters');
      for (const letter of letters) printLetter(letter);
      return 0;
    }
    case 'show': {
      const id = Number(rest[0]);
      if (!Number.isSafeInteger(id) || id <= 0) {
        console.error('dead-letters show: give a dead letter id');
        return 2;
      }
      const [letter] = await listDeadLetters(db.pool, { ids: [id], limit: 1 });
      if (letter === undefined) {
        console.error(`no dead letter ${id}`);
        return 1;
      }
      console.log(JSON.stringify(letter, null, 2));
      return 0;
    }
    case 'redeliver':
    case 'discard': {
      const selected = selection(verb, rest);
      if (selected === null) return 2;
      const n = verb === 'redeliver'
        ? await requestRedelivery(db.pool, selected)
        : await discardDeadLetters(db.pool, selected);
      console.log(
        verb === 'redeliver'
          ? `${n} dead letter(s) queued for redelivery; the running listener of each retries them next`
          : `${n} dead letter(s) discarded`,
      );
      return n > 0 ? 0 : 1;
    }
    default:
      console.error('usage: dead-letters list|show|redeliver|discard …');
      return 2;
  }
}

/** `dead-letters …`: list, show, redeliver or discard the events listeners failed on. */
export const deadLettersCommand: Command = {
  summary: 'list | show <id> | redeliver | discard events listeners failed on',
  usage: 'dead-letters list|show|redeliver|discard',
  run: deadLetters,
};

/** `listeners`: each listener's checkpoint owner, lag and open dead letters. */
export const listenersCommand: Command = {
  summary: 'listeners: owner, events and seconds behind, open dead letters',
  usage: 'listeners [--json]',
  async run(db, argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
    const statuses = await listenerStatuses(db.pool);
    if (values.json === true) {
      console.log(JSON.stringify(statuses, null, 2));
      return 0;
    }
    if (statuses.length === 0) console.log('no listener has run yet');
    for (const s of statuses) {
      console.log(
        `${s.name.padEnd(20)}  behind ${String(s.events_behind).padStart(7)} events / ${
          s.seconds_behind.toFixed(1).padStart(8)
        } s  processed ${s.events_processed}  dead letters ${s.dead_letters}  owner ${s.owner ?? '(none)'}`,
      );
    }
    return 0;
  },
};
