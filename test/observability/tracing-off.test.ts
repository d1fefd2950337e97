/**
 * Tracing is off by default: with LOCKSTEP_TRACING unset, an app that serves an asynchronous grant
 * and runs its job loads no OpenTelemetry module at all and stores no traceparent; with
 * LOCKSTEP_TRACING=console the same run loads the SDK and stores one (so the probe sees modules
 * when there are some). A child process each (module hooks watch what it resolves); SQLite.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { childEnv, ROOT } from '../cli/harness.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lockstep-otel-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function probe(name: string, tracing: string | undefined) {
  const out = join(dir, `${name}.txt`);
  const env = childEnv({ OTEL_PROBE_OUT: out });
  delete env.LOCKSTEP_TRACING;
  if (tracing !== undefined) env.LOCKSTEP_TRACING = tracing;
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/otel-probe.ts'), join(dir, `${name}.db`)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, stderr).toBe(0);
  const modules = (await readFile(out, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const last = stdout.trim().split('\n').at(-1)!;
  return { modules, result: JSON.parse(last) as { status: string; traceParents: (string | null)[] } };
}

it('off by default: no OpenTelemetry module loaded, no traceparent stored', async () => {
  const { modules, result } = await probe('off', undefined);
  expect(result.status).toBe('pending');
  expect(result.traceParents.length).toBeGreaterThan(0);
  expect(result.traceParents.every((t) => t === null)).toBe(true);
  expect(modules).toEqual([]);
});

it('LOCKSTEP_TRACING=console: the SDK is loaded and the job carries the write\'s traceparent', async () => {
  const { modules, result } = await probe('on', 'console');
  expect(result.status).toBe('pending');
  expect(modules.some((m) => m.includes('/@opentelemetry/sdk-trace-base/'))).toBe(true);
  expect(result.traceParents.some((t) => t !== null && /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/.test(t))).toBe(true);
});
