/**
 * The documentation cites only files the repository has: every relative Markdown link, and every
 * repository path quoted in backticks (`src/…`, `docs/…`, …), resolves; nothing cites a DESIGN.md
 * or a ../shared folder that lives outside the repository.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../../src/cli/program.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SKIP = new Set(['node_modules', '.git', 'results', 'data']);

function markdownFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) markdownFiles(path, out);
    else if (name.endsWith('.md')) out.push(path);
  }
  return out;
}

const DOCS = markdownFiles(ROOT);
const TOP = /^(src|docs|bench|test|examples|migrations|dashboard|bin)\//;
/** Paths the docs name as history (the CHANGELOG and ADR 0004 say `src/core/` is gone). */
const HISTORICAL = new Set(['src/core/']);

describe('docs cite only what the repository holds', () => {
  it('finds the documentation', () => {
    const names = DOCS.map((f) => relative(ROOT, f));
    expect(names).toEqual(expect.arrayContaining(['README.md', 'CHANGELOG.md', 'docs/cli.md', 'docs/errors.md']));
  });

  it('every relative link and every quoted repository path exists', () => {
    const missing: string[] = [];
    for (const file of DOCS) {
      const text = readFileSync(file, 'utf8');
      const where = relative(ROOT, file);
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^(https?:|mailto:|#)/.test(target)) continue;
        const path = target.split('#')[0]!;
        if (!existsSync(resolve(dirname(file), path))) missing.push(`${where}: link ${target}`);
      }
      for (const m of text.matchAll(/`([^`\s]+)`/g)) {
        const quoted = m[1]!.replace(/:[A-Za-z_]\w*$/, ''); // `src/x.ts:fn` names a function in a file
        if (!TOP.test(quoted) || HISTORICAL.has(quoted) || /[<>*{}…|]|\.\.\./.test(quoted)) continue;
        if (!existsSync(join(ROOT, quoted))) missing.push(`${where}: path ${m[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('no document cites a DESIGN.md or ../shared', () => {
    const cites = DOCS.filter((f) => /DESIGN\.md|\.\.\/shared/.test(readFileSync(f, 'utf8'))).map((f) => relative(ROOT, f));
    expect(cites).toEqual([]);
  });
});

describe('docs/cli.md documents every command', () => {
  it('each command of the program, and each subcommand, has its section', () => {
    const doc = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
    const headings = [...doc.matchAll(/^### `lockstep ([a-z]+)[^`]*`/gm)].map((m) => m[1]);
    const missing: string[] = [];
    for (const cmd of createProgram().commands) {
      if (!headings.includes(cmd.name())) missing.push(cmd.name());
      for (const sub of cmd.commands) if (!doc.includes(`lockstep ${cmd.name()} ${sub.name()}`)) missing.push(`${cmd.name()} ${sub.name()}`);
    }
    expect(missing).toEqual([]);
  });

  it('apply is documented as propagating what it queued (it runs the jobs unless --no-wait)', () => {
    const doc = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
    const apply = doc.slice(doc.indexOf('### `lockstep apply`'), doc.indexOf('### `lockstep', doc.indexOf('### `lockstep apply`') + 1));
    expect(apply).toContain('--no-wait');
    expect(apply).toMatch(/runs those jobs itself/);
  });
});
