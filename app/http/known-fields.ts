// Device-facing bodies ignore the fields devicetrail does not know (issue #15): device agents
// old and new send fields of their own (`is_online`, `top_processes`, a service's `config`…),
// and refusing them would keep a fleet from reporting at all. A field that is known keeps its
// strict check (a wrong type is still a 400 naming it); an unknown one is dropped before
// anything is stored, named in the answer (`ignored_fields`) and counted in a metric
// (`devicetrail_ignored_fields_total`). Admin-facing bodies stay strict.
import type { Context } from 'koa';
import type { ZodError, ZodTypeAny } from 'zod';
import { parseOr400 } from './errors.ts';

/** The most ignored fields one answer lists (the metric counts them all). */
export const MAX_LISTED_IGNORED = 100;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The paths (`root.a.b`, array items by index) of the fields of `input` that `output` lacks:
 * what a stripping zod schema dropped. `output` must keep `input`'s shape (arrays stay arrays,
 * objects stay objects); where it does not, nothing deeper is compared.
 */
export function droppedFields(input: unknown, output: unknown, root: string): string[] {
  const dropped: string[] = [];
  const stack: { input: unknown; output: unknown; path: string }[] = [{ input, output, path: root }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (Array.isArray(item.input)) {
      if (!Array.isArray(item.output)) continue;
      for (let i = item.input.length - 1; i >= 0; i -= 1) {
        stack.push({ input: item.input[i], output: item.output[i], path: `${item.path}.${i}` });
      }
    } else if (isObject(item.input) && isObject(item.output)) {
      const keys = Object.keys(item.input);
      for (let i = keys.length - 1; i >= 0; i -= 1) {
        const key = keys[i]!;
        if (!Object.hasOwn(item.output, key)) dropped.push(`${item.path}.${key}`);
        else stack.push({ input: item.input[key], output: item.output[key], path: `${item.path}.${key}` });
      }
    }
  }
  return dropped.sort();
}

type Schema<T> = ZodTypeAny & {
  safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: ZodError };
};

/**
 * Parses a device-facing body with a schema that strips unknown keys (zod's default): a 400
 * naming the field when a known one is wrong, else the data and the fields it dropped.
 */
export function parseKnown<T>(schema: Schema<T>, value: unknown, root = 'body'): { data: T; ignored: string[] } {
  const data = parseOr400(schema, value, root);
  return { data, ignored: droppedFields(value, data, root) };
}

/** Notes ignored fields on the request: the metric counts them (app/observability/metrics.ts). */
export function noteIgnored(ctx: Context, ignored: readonly string[]): void {
  if (ignored.length === 0) return;
  const noted = (ctx.state['ignoredFields'] as string[] | undefined) ?? [];
  noted.push(...ignored);
  ctx.state['ignoredFields'] = noted;
}

/** The answer with `ignored_fields` when the request had any (at most MAX_LISTED_IGNORED listed). */
export function withIgnored<T extends object>(ctx: Context, body: T): T & { ignored_fields?: string[] } {
  const noted = ctx.state['ignoredFields'] as string[] | undefined;
  if (noted === undefined || noted.length === 0) return body;
  return { ...body, ignored_fields: noted.slice(0, MAX_LISTED_IGNORED) };
}
