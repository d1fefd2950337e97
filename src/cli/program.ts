/**
 * The `lockstep` command line: commander, one file per command. Every command is a thin shell over
 * the functions the server calls (createApp, the engine, api/keys, policy-file).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { inPackage } from '../runtime/package-root.ts';
import { registerApply } from './apply.ts';
import { registerCheck } from './check.ts';
import { reportError } from './errors.ts';
import { registerKeys } from './keys.ts';
import { registerMigrate } from './migrate.ts';
import { registerServe } from './serve.ts';
import { registerWorker } from './worker.ts';
import { registerJobs } from './jobs.ts';
import { registerDrift } from './drift.ts';
import { registerChanges } from './changes.ts';
import { registerAudit } from './audit.ts';
import { registerBench } from './bench.ts';
import { registerDirectories } from './directories.ts';
import { registerTargets } from './targets.ts';
import { registerTest } from './test.ts';

const VERSION = (JSON.parse(readFileSync(inPackage('package.json'), 'utf8')) as { version: string }).version;

export function createProgram(): Command {
  const program = new Command('lockstep')
    .description('Lockstep: authorization that keeps effective permissions in lockstep with policy')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    // Usage errors become exit status 2 (see errors.ts), not commander's process.exit(1).
    .exitOverride();
  registerServe(program);
  registerMigrate(program);
  registerApply(program);
  registerCheck(program);
  registerKeys(program);
  registerWorker(program);
  registerJobs(program);
  registerDrift(program);
  registerChanges(program);
  registerAudit(program);
  registerBench(program);
  registerDirectories(program);
  registerTargets(program);
  registerTest(program);
  return program;
}

/** Runs the CLI and returns the exit status (0 unless a command set one or failed). */
export async function runCli(argv: string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportError(e, (line) => process.stderr.write(`${line}\n`));
  }
}
