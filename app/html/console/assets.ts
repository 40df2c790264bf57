// The console's static files (./assets/: scripts and the stylesheet), read once, each with a
// content hash: pages link `/console/assets/<name>?v=<hash>`, so a browser keeps them for a
// year without asking again (no revalidation round trip before the first paint), and a
// changed file is a new URL.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

/** One static file. */
export type ConsoleAsset = { body: string; type: string; hash: string };

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

function load(): Map<string, ConsoleAsset> {
  const dir = new URL('./assets/', import.meta.url);
  const assets = new Map<string, ConsoleAsset>();
  for (const name of readdirSync(dir).sort()) {
    const type = TYPES[name.split('.').pop() ?? ''];
    if (type === undefined) continue;
    const body = readFileSync(new URL(name, dir), 'utf8');
    assets.set(name, { body, type, hash: createHash('sha256').update(body).digest('base64url').slice(0, 16) });
  }
  return assets;
}

/** Every static file by name. */
export const consoleAssets: ReadonlyMap<string, ConsoleAsset> = load();

/** The URL of a static file, with its content hash. */
export function assetUrl(name: string): string {
  const asset = consoleAssets.get(name);
  if (asset === undefined) throw new Error(`no console asset ${name}`);
  return `/console/assets/${name}?v=${asset.hash}`;
}
