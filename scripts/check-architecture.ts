// The architecture check (`npm run check:arch`, run in CI). Fails on:
// - an import against the layer order: domain ← infra ← app ← replay ← bench/scripts ← test
//   (replay/ may reach into app/ only for app/cli/ and app/html/; nothing outside test/ imports test/);
// - domain/ importing anything but domain/ and zod, or reading a clock, env, randomness or network;
// - an import loop between files (any cycle, not only two files importing each other);
// - slonik's `transaction()` called in app/, infra/ or replay/ outside infra/postgres/transaction.ts
//   (its AsyncLocalStorage turns on promise hooks that every request then pays for, issue #19).
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const layerOrder = ['domain', 'infra', 'app', 'replay', 'bench', 'scripts', 'test'] as const;
type Layer = (typeof layerOrder)[number];
const rank: Record<Layer, number> = { domain: 0, infra: 1, app: 2, replay: 3, bench: 4, scripts: 4, test: 5 };
const forbiddenInDomain = [
  /\bprocess\.env\b/,
  /\bDate\.now\s*\(/,
  /\bnew Date\s*\(\s*\)/,
  /\bMath\.random\s*\(/,
  /\bcrypto\.randomUUID\s*\(/,
  /\bperformance\.now\s*\(/,
  /\bfetch\s*\(/,
  /\bDeno\./,
];
/** The service's code opens transactions with infra/postgres/transaction.ts, never slonik's own. */
const serviceLayers: readonly Layer[] = ['app', 'infra', 'replay'];
const TRANSACTION_HELPER = 'infra/postgres/transaction.ts';
const slonikTransaction = /\.transaction\s*\(/;
const importPattern =
  /(?:import|export)\s[^'";]*?from\s+['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

async function* walk(dir: string): AsyncGenerator<string> {
  if (!existsSync(dir)) return;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.name.endsWith('.ts')) yield full;
  }
}

function layerOf(rel: string): Layer | null {
  const top = rel.split('/')[0] ?? '';
  return (layerOrder as readonly string[]).includes(top) ? (top as Layer) : null;
}

/** Whether `from` may import `to` (repo-relative paths). */
function allowed(from: string, to: string): string | null {
  const a = layerOf(from);
  const b = layerOf(to);
  if (a === null || b === null) return null;
  if (b === 'test' && a !== 'test') return 'nothing outside test/ imports test/';
  if (a === 'replay' && b === 'app' && !to.startsWith('app/cli/') && !to.startsWith('app/html/')) {
    return 'replay/ may import only app/cli/ and app/html/ from app/';
  }
  if (rank[b] > rank[a] || (rank[a] === rank[b] && a !== b)) {
    return `${a}/ may not import ${b}/ (layer order ${layerOrder.join(' ← ')})`;
  }
  return null;
}

/** Strips comments so that an import written in a comment is not counted. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const problems: string[] = [];
const graph = new Map<string, string[]>();
let files = 0;
for (const top of layerOrder) {
  for await (const file of walk(path.join(root, top))) {
    files += 1;
    const rel = path.relative(root, file).split(path.sep).join('/');
    const raw = await readFile(file, 'utf8');
    const edges: string[] = [];
    for (const match of code(raw).matchAll(importPattern)) {
      const spec = match[1] ?? match[2] ?? match[3] ?? '';
      if (spec.startsWith('.')) {
        const target = path.relative(root, path.resolve(path.dirname(file), spec)).split(path.sep).join('/');
        edges.push(target);
        const why = allowed(rel, target);
        if (why !== null) problems.push(`${rel}: imports ${spec}: ${why}`);
        if (top === 'domain' && !target.startsWith('domain/')) {
          problems.push(`${rel}: imports ${spec} (outside domain/)`);
        }
      } else if (top === 'domain' && spec !== 'zod' && !spec.startsWith('zod/')) {
        problems.push(`${rel}: imports ${spec} (domain/ may import only zod and domain/)`);
      }
    }
    graph.set(rel, edges);
    if (serviceLayers.includes(top) && rel !== TRANSACTION_HELPER) {
      code(raw).split('\n').forEach((line, i) => {
        if (slonikTransaction.test(line)) {
          problems.push(
            `${rel}:${i + 1}: slonik's transaction() (use transaction() of ${TRANSACTION_HELPER}: no promise hooks)`,
          );
        }
      });
    }
    if (top === 'domain') {
      raw.split('\n').forEach((line, i) => {
        if (line.trim().startsWith('//')) return;
        for (const pattern of forbiddenInDomain) {
          if (pattern.test(line)) {
            problems.push(`${rel}:${i + 1}: ${pattern.source} (domain/ reads no clock, env, randomness or network)`);
          }
        }
      });
    }
  }
}

// import loops: depth-first search, reporting each cycle once
const state = new Map<string, 'open' | 'done'>();
const stack: string[] = [];
const cycles = new Set<string>();
function visit(node: string): void {
  state.set(node, 'open');
  stack.push(node);
  for (const next of graph.get(node) ?? []) {
    if (!graph.has(next)) continue;
    const seen = state.get(next);
    if (seen === 'open') {
      const loop = stack.slice(stack.indexOf(next));
      const start = loop.indexOf([...loop].sort()[0] ?? next);
      cycles.add([...loop.slice(start), ...loop.slice(0, start)].join(' → '));
    } else if (seen === undefined) {
      visit(next);
    }
  }
  stack.pop();
  state.set(node, 'done');
}
for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
for (const cycle of cycles) problems.push(`import loop: ${cycle} → (back to the first)`);

if (problems.length > 0) {
  console.error(`architecture check FAILED (${problems.length}):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `architecture check passed: ${files} files; imports follow ${layerOrder.join(' ← ')}, no import loops; ` +
    "domain/ imports only domain/ and zod and reads no clock, env or randomness; no slonik transaction() in the service's code",
);
