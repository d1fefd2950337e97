/**
 * Every command answers `--help` (exit 0, usage on stdout); usage errors exit 2; the exit-status
 * table in docs/cli.md and the CLI's EXIT constants are kept in step.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import { killAll, lockstep, ROOT } from './harness.ts';

const COMMANDS = [[], ['serve'], ['migrate'], ['apply'], ['check'], ['keys'], ['keys', 'create'], ['keys', 'list'], ['keys', 'revoke']];

describe('lockstep --help', () => {
  afterAll(killAll);

  it('every command prints its usage and exits 0', async () => {
    const runs = await Promise.all(COMMANDS.map((c) => lockstep([...c, '--help'])));
    runs.forEach((run, i) => {
      const name = ['lockstep', ...COMMANDS[i]!].join(' ');
      expect(run.code, name).toBe(0);
      expect(run.stdout, name).toMatch(new RegExp(`^Usage: ${name} `));
      expect(run.stderr, name).toBe('');
    });
    // The options a user needs are documented where they are used.
    const help = Object.fromEntries(COMMANDS.map((c, i) => [c.join(' '), runs[i]!.stdout]));
    for (const o of ['--db <target>', '--schema <name>', '--port <port>', '--host <host>', '--verify <mode>']) expect(help.serve).toContain(o);
    expect(help.apply).toMatch(/-f, --file <path>[\s\S]*--dry-run/);
    expect(help.check).toMatch(/--consistency <mode>/);
    expect(help['keys create']).toMatch(/--scope <scope>\s+admin \| write \| check/);
  });

  it('usage errors exit 2 and say what is wrong', async () => {
    const [missing, unknown, badFlag, none] = await Promise.all([
      lockstep(['apply']),
      lockstep(['frobnicate']),
      lockstep(['serve', '--port', 'eighty']),
      lockstep([]),
    ]);
    expect(missing.code).toBe(EXIT.USAGE);
    expect(missing.stderr).toContain("required option '-f, --file <path>' not specified");
    expect(unknown.code).toBe(EXIT.USAGE);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect(badFlag.code).toBe(EXIT.USAGE);
    expect(badFlag.stderr).toBe("USAGE: --port must be 0-65535, got 'eighty'\n");
    expect(none.code).toBe(EXIT.USAGE);
    expect(none.stderr).toContain('Usage: lockstep');
  });

  it('docs/cli.md lists every exit status', async () => {
    const doc = await readFile(join(ROOT, 'docs/cli.md'), 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `(\d+)` \| `([A-Z_]+)` \|/gm)].map((m) => [m[2]!, Number(m[1])]));
    expect(Object.fromEntries(rows)).toEqual(EXIT);
  });
});
