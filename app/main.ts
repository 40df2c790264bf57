// The process entry (`npm start`): config → logger, then either the whole service in this
// process (WORKERS=1, and always under Deno) or, with WORKERS > 1 on Node, the cluster primary
// (app/cluster/primary.ts), which forks the workers; a forked worker runs the service as
// worker N (DEVICETRAIL_WORKER, set by the primary).
import cluster from 'node:cluster';
import { setFlagsFromString } from 'node:v8';
import { type Config, ConfigError, isDeno, loadConfig, workerIndex } from './config.ts';
import { createLogger } from './observability/logger.ts';
import { runService } from './service.ts';
import { workerIpc } from './cluster/ipc.ts';
import { runPrimary } from './cluster/primary.ts';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  console.error(`[devicetrail] ${error instanceof ConfigError ? error.message : String(error)}`);
  process.exit(1);
}
// each process of the service (primary and workers) collects its old generation sooner than V8
// would on its own: a fleet's reports leave short-lived state copies in it, which otherwise
// pile up to ~4x the live heap before a full collection (bench/RESULTS.md, issue #19)
if (config.HEAP_GROWING_PERCENT > 0 && !isDeno) {
  setFlagsFromString(`--heap-growing-percent=${config.HEAP_GROWING_PERCENT}`);
}
const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, nodeEnv: config.NODE_ENV });
const index = isDeno ? null : workerIndex();
if (index !== null && cluster.isWorker) {
  runService(config, logger.child({ worker: index }), { kind: 'worker', index, lead: index === 1, ipc: workerIpc() });
} else if (config.WORKERS > 1) {
  runPrimary(config, logger);
} else {
  runService(config, logger, { kind: 'single' });
}
