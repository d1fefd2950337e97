#!/usr/bin/env node
/** Entry point: `node --import tsx src/cli/main.ts …`, or bin/lockstep.js. */
import { runCli } from './program.ts';

process.exitCode = await runCli(process.argv);
