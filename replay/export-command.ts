// `replay export <uuid> [--since T] [--until T] [--out file]`: a device's events as NDJSON,
// one full event row (every column) per line: the fixture format.
import { openPrivateFile } from '../app/cli/private-file.ts';
import type { StoredEvent } from '../domain/recorded-event.ts';
import { ReplayError, type ReplaySource } from '../domain/replay/source.ts';
import { CliError, type Command, commonOptions, deviceArgument, optionalInstant, withSource } from './command.ts';

const usage = 'export <uuid> [--since <instant>] [--until <instant>] [--out <file>] [--fixture <file>]';

/** The columns of an event row, in table order: one NDJSON line. */
export function ndjsonLine(event: StoredEvent): string {
  return JSON.stringify({
    event_id: event.event_id,
    event_type: event.event_type,
    aggregate_type: event.aggregate_type,
    aggregate_id: event.aggregate_id,
    aggregate_version: event.aggregate_version,
    global_position: event.global_position,
    transaction_id: event.transaction_id,
    data: event.data,
    metadata: event.metadata,
    timestamp: event.timestamp,
    source: event.source,
    hash: event.hash,
  });
}

/** Writes a device's events as NDJSON to a stream; returns how many. */
export async function exportDevice(
  source: ReplaySource,
  uuid: string,
  range: { since?: string | undefined; until?: string | undefined },
  write: (line: string) => Promise<void> | void,
): Promise<number> {
  let count = 0;
  for await (const event of source.exportEvents(uuid, range)) {
    await write(`${ndjsonLine(event)}\n`);
    count += 1;
  }
  return count;
}

/** The export command. */
export const exportCommand: Command = {
  name: 'export',
  summary: "A device's events as NDJSON, one event row (all columns) per line, in version order: the fixture format.",
  usage,
  help: `options:
  --since <instant>  only events at or after this instant
  --until <instant>  only events at or before this instant
  --out <file>       write to this file instead of stdout (mode 0600; a symlink there is replaced, not followed)
  --fixture <file>   re-export from a fixture instead of the database; repeatable
  -h, --help         this help

example:
  npm run replay -- export 12345678-1234-1234-1234-123456789abc --out device.ndjson`,
  options: { ...commonOptions, since: { type: 'string' }, until: { type: 'string' }, out: { type: 'string' } },
  positionals: 1,
  async run(ctx, values, positionals) {
    return withSource(ctx, values, async (source) => {
      const uuid = await deviceArgument(source, positionals, usage);
      const range = {
        since: optionalInstant(values, 'since', source.now),
        until: optionalInstant(values, 'until', source.now),
      };
      if (await source.device(uuid) === null) {
        throw new ReplayError('device_not_found', `no device ${uuid} in ${source.description}`, { uuid });
      }
      const out = values['out'];
      if (typeof out !== 'string') {
        await exportDevice(source, uuid, range, (line) => {
          ctx.stdout.write(line);
        });
        return 0;
      }
      const cannotWrite = (error: NodeJS.ErrnoException) =>
        new CliError(`--out: cannot write ${out}: ${error.code ?? error.message}`, 1);
      const file = await openPrivateFile(out).catch((error) => {
        throw cannotWrite(error);
      });
      let count: number;
      try {
        count = await exportDevice(source, uuid, range, (line) =>
          file.write(line).catch((error) => {
            throw cannotWrite(error);
          }));
        await file.commit().catch((error) => {
          throw cannotWrite(error);
        });
      } catch (error) {
        await file.abort(); // a failed export leaves no file behind
        throw error;
      }
      ctx.stderr.write(`exported ${count} event(s) of ${uuid} to ${out}\n`);
      return 0;
    });
  },
};
