/**
 * `lockstep test -f policy.yaml`: runs the file's assertions against in-memory SQLite stores (no
 * database needed; nothing is written anywhere) and exits 11 (ASSERTIONS_FAILED) when one fails.
 */
import type { Command } from 'commander';
import { createLockstep } from '../app.ts';
import { formatTestReport, runAssertions } from '../policy-file/assertions.ts';
import { readPolicyFile } from '../policy-file/parse.ts';
import { openSqlite } from '../storage/sqlite-engine.ts';
import { EXIT, UsageError } from './errors.ts';

async function test(opts: { file: string; json?: boolean }) {
  const file = await readPolicyFile(opts.file);
  if (file.assertions.length === 0) throw new UsageError(`${opts.file} has no assertions (see docs/policy-file.md, Assertions)`);
  const report = await runAssertions(file, async () => {
    const db = openSqlite(':memory:');
    await db.migrate();
    const lockstep = createLockstep(db);
    return { lockstep, close: () => lockstep.close() };
  });
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatTestReport(report)}\n`);
  if (!report.passed) process.exitCode = EXIT.ASSERTIONS_FAILED;
}

export function registerTest(program: Command) {
  program
    .command('test')
    .description("Run a policy file's assertions against an in-memory store; exit 11 if one fails")
    .requiredOption('-f, --file <path>', 'the policy file with an assertions: section (see docs/policy-file.md)')
    .option('--json', 'print the report as JSON')
    .action(test);
}
