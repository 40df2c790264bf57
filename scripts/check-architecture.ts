// Fails when domain/ imports anything outside domain/ (other than zod), or any node: module
// that does I/O, or reads a clock, env or random source. Run in CI.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const domain = path.join(root, 'domain');
const forbiddenGlobals = [
  /\bprocess\.env\b/, /\bDate\.now\s*\(/, /\bnew Date\s*\(\s*\)/, /\bMath\.random\s*\(/,
  /\bcrypto\.randomUUID\s*\(/, /\bperformance\.now\s*\(/, /\bfetch\s*\(/, /\bDeno\./,
];

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.name.endsWith('.ts')) yield full;
  }
}

const problems: string[] = [];
let files = 0;
for await (const file of walk(domain)) {
  files += 1;
  const text = await readFile(file, 'utf8');
  const rel = path.relative(root, file);
  for (const match of text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = match[1] ?? match[2] ?? '';
    if (spec === 'zod' || spec.startsWith('zod/')) continue;
    if (spec.startsWith('.')) {
      const target = path.resolve(path.dirname(file), spec);
      if (!target.startsWith(domain + path.sep)) problems.push(`${rel}: imports ${spec} (outside domain/)`);
      continue;
    }
    problems.push(`${rel}: imports ${spec} (domain/ may import only zod and domain/)`);
  }
  text.split('\n').forEach((line, i) => {
    if (line.trim().startsWith('//')) return;
    for (const pattern of forbiddenGlobals) {
      if (pattern.test(line)) problems.push(`${rel}:${i + 1}: ${pattern.source} (domain/ reads no clock, env, randomness or network)`);
    }
  });
}
if (problems.length > 0) {
  console.error(`architecture check FAILED (${problems.length}):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`architecture check passed: ${files} files in domain/ import only domain/ and zod, and read no clock, env or randomness`);
