// The distribution plan of docs/SCALING.md and the checks `npm run check:distributable` runs
// against it (scripts/check-distributable.ts; test/ops/distributable.test.ts).
//
// The plan (Citus, or any PostgreSQL-compatible store that shards by one column per table):
// the per-device tables are distributed by the device's uuid (the event log's aggregate_id)
// and co-located, so everything one device's write touches is on one shard; a few small,
// rarely written tables are reference tables (a copy on every node); the rest stays on the
// coordinator (listeners, webhooks, projections, console sessions: operator-scale data).
//
// Schema check (from pg_catalog of a migrated database):
// - every primary key, unique constraint and unique index of a distributed table includes
//   its distribution column;
// - every foreign key of a distributed table includes its distribution column and points at
//   a co-located table by its distribution column, or at a reference table;
// - no reference or coordinator table has a foreign key into a distributed table.
// Write-path check (statement level, from the SQL text of infra/ and app/): every INSERT,
// UPDATE and DELETE of a distributed table names the distribution column (the inserted
// columns, or a condition of the UPDATE/DELETE), so it is routed by aggregate; a statement
// that writes several aggregates at once (a batch keyed by a recordset, ANY or a join on the
// distribution column) is listed as a batch: each row still belongs to one aggregate, and
// under sharding the batch writer groups its batch by shard (docs/SCALING.md).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';

/** Distributed tables and their distribution column. */
export const DISTRIBUTED: Readonly<Record<string, string>> = {
  events: 'aggregate_id',
  streams: 'aggregate_id',
  snapshots: 'aggregate_id',
  retention_anchors: 'aggregate_id',
  devices: 'uuid',
  device_metrics: 'device_uuid',
  device_logs: 'device_uuid',
};

/** Reference tables: small, rarely written, replicated to every node (looked up by key hash, not by device). */
export const REFERENCE: readonly string[] = [
  'device_credentials',
  'mqtt_credentials',
  'provisioning_keys',
  'admin_tokens',
];

/** A violation of the plan, readable on its own. */
export type Violation = { table: string; problem: string };

type ConstraintRow = {
  table: string;
  name: string;
  kind: string;
  columns: string[];
  ref_table: string | null;
  ref_columns: string[] | null;
};

/** Checks the schema of the database `client` is connected to against `distributed` and `reference`. */
export async function checkSchema(
  client: pg.Client,
  distributed: Readonly<Record<string, string>> = DISTRIBUTED,
  reference: readonly string[] = REFERENCE,
): Promise<Violation[]> {
  const violations: Violation[] = [];
  const names = Object.keys(distributed);
  const { rows: columns } = await client.query<{ table: string; column: string }>(
    `SELECT c.relname AS table, a.attname AS column
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = current_schema() AND c.relname = ANY($1) AND c.relkind IN ('r', 'p')`,
    [names],
  );
  for (const [table, column] of Object.entries(distributed)) {
    const have = columns.filter((c) => c.table === table);
    if (have.length === 0) violations.push({ table, problem: `the plan distributes ${table}, which does not exist` });
    else if (!have.some((c) => c.column === column)) {
      violations.push({ table, problem: `distribution column ${column} does not exist` });
    }
  }
  // constraints (primary keys, unique, exclusion, foreign keys) of the partitioned parents and
  // plain tables; partitions inherit theirs
  const { rows: constraints } = await client.query<ConstraintRow>(
    `SELECT c.relname AS table, k.conname AS name, k.contype AS kind,
            ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i) AS columns,
            r.relname AS ref_table,
            CASE WHEN k.confrelid = 0 THEN NULL ELSE
              ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
                      JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i) END AS ref_columns
       FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_class r ON r.oid = k.confrelid
      WHERE n.nspname = current_schema() AND k.contype IN ('p', 'u', 'x', 'f') AND NOT c.relispartition
        AND k.conparentid = 0`,
  );
  for (const k of constraints) {
    const column = distributed[k.table];
    if (k.kind !== 'f') {
      if (column !== undefined && !k.columns.includes(column)) {
        const kind = k.kind === 'p' ? 'primary key' : k.kind === 'u' ? 'unique key' : 'exclusion constraint';
        violations.push({
          table: k.table,
          problem: `${kind} ${k.name} (${k.columns.join(', ')}) lacks the distribution column ${column}`,
        });
      }
      continue;
    }
    const target = k.ref_table ?? '';
    const targetColumn = distributed[target];
    if (column === undefined) {
      if (targetColumn !== undefined) {
        violations.push({
          table: k.table,
          problem: `foreign key ${k.name} of a ${
            reference.includes(k.table) ? 'reference' : 'coordinator'
          } table points into the distributed table ${target}`,
        });
      }
      continue;
    }
    if (reference.includes(target)) continue; // a distributed table may point at a reference table
    const at = k.columns.indexOf(column);
    if (targetColumn === undefined) {
      violations.push({
        table: k.table,
        problem: `foreign key ${k.name} points at ${target}, which is neither distributed nor a reference table`,
      });
    } else if (at < 0 || k.ref_columns?.[at] !== targetColumn) {
      violations.push({
        table: k.table,
        problem: `foreign key ${k.name} (${k.columns.join(', ')}) → ${target} (${
          (k.ref_columns ?? []).join(', ')
        }) does not pair ${column} with ${target}.${targetColumn}: the rows would not be co-located`,
      });
    }
  }
  // unique indexes that are not constraints (CREATE UNIQUE INDEX)
  const { rows: indexes } = await client.query<{ table: string; name: string; columns: string[]; expression: boolean }>(
    `SELECT c.relname AS table, i.relname AS name,
            ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY u(n, o)
                    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.n ORDER BY u.o) AS columns,
            x.indexprs IS NOT NULL AS expression
       FROM pg_index x
       JOIN pg_class c ON c.oid = x.indrelid
       JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND x.indisunique AND c.relname = ANY($1) AND NOT c.relispartition
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)`,
    [names],
  );
  for (const index of indexes) {
    const column = distributed[index.table]!;
    if (!index.columns.includes(column)) {
      violations.push({
        table: index.table,
        problem: `unique index ${index.name} (${index.columns.join(', ')}${
          index.expression ? ', expressions' : ''
        }) lacks the distribution column ${column}`,
      });
    }
  }
  return violations;
}

/** One write statement found in the source. */
export type WriteStatement = {
  file: string;
  line: number;
  verb: 'INSERT' | 'UPDATE' | 'DELETE';
  table: string;
  /** single: keyed by one aggregate; batch: several aggregates, each row keyed by its own. */
  shape: 'single' | 'batch';
};

/**
 * The SQL templates of a TypeScript source: the text of each sql`…` (sql.type(…)`…`,
 * sql.fragment`…`, sql.unsafe`…`). An interpolation of a module constant defined as a plain
 * fragment (`const columns = sql.fragment\`a, b\``) is replaced by its text; any other is
 * `?param`.
 */
export function sqlTemplates(source: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  const constants = new Map<string, string>();
  for (const m of source.matchAll(/^const (\w+) = sql\.fragment`([^`$]*)`/gm)) constants.set(m[1]!, m[2]!);
  const opener = /\bsql(\.type\(|\.fragment`|\.unsafe`|`)/g;
  let match: RegExpExecArray | null;
  while ((match = opener.exec(source)) !== null) {
    let start = match.index + match[0].length;
    if (match[1] === '.type(') {
      // sql.type(<schema, nested parentheses and all>)`
      let parens = 1;
      while (start < source.length && parens > 0) {
        const ch = source[start++]!;
        if (ch === '(') parens += 1;
        else if (ch === ')') parens -= 1;
      }
      if (source[start] !== '`') continue;
      start += 1;
    }
    let i = start;
    let depth = 0; // inside ${ … }, where nested templates may appear
    let text = '';
    let nested = 0;
    for (; i < source.length; i += 1) {
      const ch = source[i]!;
      if (depth === 0) {
        if (ch === '`') break;
        if (ch === '$' && source[i + 1] === '{') {
          const name = /^\$\{\s*(\w+)\s*\}/.exec(source.slice(i, i + 80))?.[1];
          const known = name === undefined ? undefined : constants.get(name);
          if (known !== undefined) {
            text += known;
            i = source.indexOf('}', i);
            continue;
          }
          depth = 1;
          text += ' ?param ';
          i += 1;
          continue;
        }
        text += ch;
      } else {
        if (ch === '`') nested = nested === 0 ? 1 : 0;
        else if (nested === 0 && ch === '{') depth += 1;
        else if (nested === 0 && ch === '}') depth -= 1;
      }
    }
    out.push({ text, line: source.slice(0, match.index).split('\n').length });
    opener.lastIndex = i + 1;
  }
  return out;
}

const WRITE = /\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([a-z_][a-z0-9_]*)\b/gi;
// a statement over a set of aggregates: a recordset, an array, a subquery, another statement's
// rows, or a row source interpolated from elsewhere (FROM ${…})
const BATCH =
  /jsonb_to_recordset|=\s*ANY\s*\(|\bunnest\s*\(|\bIN\s*\(\s*SELECT\b|\bFROM\s+(?:head|appended|at_head)\b|\bFROM\s*\(?\s*\?param/i;

/**
 * The writes of distributed tables in `source` (a file's text), each checked: an INSERT's
 * column list, or an UPDATE's or DELETE's conditions, must name the distribution column.
 */
export function checkWrites(
  file: string,
  source: string,
  distributed: Readonly<Record<string, string>> = DISTRIBUTED,
): { statements: WriteStatement[]; violations: Violation[] } {
  const statements: WriteStatement[] = [];
  const violations: Violation[] = [];
  for (const template of sqlTemplates(source)) {
    const writes = [...template.text.matchAll(WRITE)];
    writes.forEach((write, k) => {
      const table = write[2]!;
      const column = distributed[table];
      if (column === undefined) return;
      const verb = write[1]!.split(/\s+/)[0]!.toUpperCase() as WriteStatement['verb'];
      // the statement's text: up to the next write in the template (a CTE's own statement)
      const body = template.text.slice(write.index! + write[0].length, writes[k + 1]?.index ?? template.text.length);
      const line = template.line + template.text.slice(0, write.index).split('\n').length - 1;
      const where = `${file}:${line}`;
      const keyed = verb === 'INSERT'
        ? new RegExp(`^\\s*\\(([^)]*\\b${column}\\b[^)]*)\\)`, 'i').test(body)
        : new RegExp(`\\b(WHERE|AND|ON)\\b[^;]*?\\b(?:\\w+\\.)?${column}\\b\\s*(=|IN\\b)`, 'is').test(body) ||
          new RegExp(
            `\\b(WHERE|AND|ON)\\b[^;]*?\\(\\s*(?:\\w+\\.)?\\w+\\s*,\\s*(?:\\w+\\.)?${column}\\s*\\)\\s*IN\\b`,
            'is',
          )
            .test(body);
      if (!keyed) {
        violations.push({
          table,
          problem: `${where}: ${verb} ${table} does not name ${column} (${
            verb === 'INSERT' ? 'in its column list' : 'in a condition'
          }): it is not routed by aggregate`,
        });
        return;
      }
      statements.push({ file, line, verb, table, shape: BATCH.test(body) ? 'batch' : 'single' });
    });
  }
  return { statements, violations };
}

/** Every .ts file under `dirs` (relative to `root`), skipping tests. */
export async function sourceFiles(root: string, dirs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const entry of await readdir(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(rel);
      else if (entry.name.endsWith('.ts')) out.push(rel);
    }
  }
  for (const dir of dirs) await walk(dir);
  return out.sort();
}

/** The write-path check over the service's source (infra/ and app/). */
export async function checkWritePath(root: string): Promise<{ statements: WriteStatement[]; violations: Violation[] }> {
  const statements: WriteStatement[] = [];
  const violations: Violation[] = [];
  for (const file of await sourceFiles(root, ['infra', 'app'])) {
    const found = checkWrites(file, await readFile(path.join(root, file), 'utf8'));
    statements.push(...found.statements);
    violations.push(...found.violations);
  }
  return { statements, violations };
}
