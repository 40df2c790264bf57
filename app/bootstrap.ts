// First start: with no admin token at all, create one named "bootstrap", print it once
// and keep it in DATA_DIR/admin-token (mode 0600) for the operator.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { createAdminTokens } from '../infra/devices/credentials.ts';

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
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  print(`created admin token "bootstrap" (shown once; also saved to ${file}):\n\n    ${token}\n`);
  return token;
}
