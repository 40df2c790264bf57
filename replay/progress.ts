// A one-line progress bar on stderr, drawn only when stdout and stderr are terminals.
import type { CommandContext } from './command.ts';

/** Returns a progress callback (a no-op off a terminal) and a function that clears the line. */
export function progressBar(
  ctx: CommandContext,
  label: string,
): { update: (done: number, total: number) => void; done: () => void } {
  if (ctx.stdout.isTTY !== true || ctx.stderr.isTTY !== true) return { update: () => {}, done: () => {} };
  let drawn = false;
  return {
    update(done, total) {
      const width = 30;
      const ratio = total === 0 ? 1 : done / total;
      const filled = Math.round(ratio * width);
      ctx.stderr.write(
        `\r${label} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${done}/${total} ${(ratio * 100).toFixed(0)}%`,
      );
      drawn = true;
    },
    done() {
      if (drawn) ctx.stderr.write('\r\u001b[2K');
    },
  };
}
