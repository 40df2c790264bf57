// First start: with no usable admin token (none, or all revoked or expired), create one named
// "bootstrap", print it once and keep it in DATA_DIR/admin-token (mode 0600, never written
// through a symlink) for the operator. It never expires: `npm run admin -- rotate-token
// bootstrap --expires-in 30d` replaces it (and that file) with one that does.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { createAdminTokens } from '../infra/devices/credentials.ts';
import { writePrivateFile } from './cli/private-file.ts';

/** Creates the bootstrap admin token when none exists; returns it, or null. */
export async function bootstrapAdminToken(
  tokens: ReturnType<typeof createAdminTokens>,
  dataDir: string,
  print: (line: string) => void,
): Promise<string | null> {
  if ((await tokens.count()) > 0) return null;
  const { token } = await tokens.create('bootstrap');
  await mkdir(dataDir, { recursive: true });
  const file = path.resolve(dataDir, 'admin-token');
  await writePrivateFile(file, `${token}\n`);
  print(`created admin token "bootstrap" (shown once; also saved to ${file}):\n\n    ${token}\n`);
  return token;
}
