#!/usr/bin/env node
/** Entry point: `node --import tsx src/cli/main.ts …` (sources), or bin/lockstep.js (compiled, dist/cli/main.js). */
import { runCli } from './program.ts';

// Piped into `head` (or any reader that stops early): the write fails with EPIPE, emitted as an
// 'error' event that nothing else listens to, which crashed the process with a stack trace. The
// reader wanted no more, so stop quietly, as Unix tools do; what was committed stays committed.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

process.exitCode = await runCli(process.argv);
