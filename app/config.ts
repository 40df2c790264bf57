// Configuration: every environment variable devicetrail reads, validated in one place.
import { z } from 'zod';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(4002),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  BODY_LIMIT_KB: z.coerce.number().int().min(1).max(10_240).default(256),
  DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  PARTITION_DAYS_AHEAD: z.coerce.number().int().min(1).max(366).default(7),
  LOG_REQUESTS: bool.default('false'),
});

/** Validated configuration. */
export type Config = z.infer<typeof schema>;

/** Thrown when a variable is invalid; names the variable and the problem. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment. Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(present);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return result.data;
}
