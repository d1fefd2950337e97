// Boots a worker thread that runs TypeScript (src/audit/history-pool.ts starts them): module hooks
// are not inherited by worker threads, so register tsx here, as bin/lockstep.js does for the
// process, then load the entry the pool names in workerData.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
