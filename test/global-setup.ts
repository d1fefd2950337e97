/**
 * Decides once per run whether the PostgreSQL suites run. With LOCKSTEP_REQUIRE_POSTGRES=1 (set by
 * .ci/run) an unreachable server fails the run; otherwise the PostgreSQL suites are skipped and the
 * run says so loudly.
 */
import pg from 'pg';
import { maskUrl } from '../src/storage/postgres-engine.ts';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

export default async function setup() {
  const url = process.env.LOCKSTEP_TEST_PG_URL ?? DEFAULT_PG_URL;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  let reachable = true;
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (e) {
    reachable = false;
    if (process.env.LOCKSTEP_REQUIRE_POSTGRES === '1') {
      throw new Error(`PostgreSQL is required (LOCKSTEP_REQUIRE_POSTGRES=1) but ${maskUrl(url)} is unreachable: ${(e as Error).message}`);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  process.env.LOCKSTEP_TEST_PG = reachable ? url : '';
  if (!reachable) {
    const bar = '!'.repeat(78);
    console.warn(`\n${bar}\n!! PostgreSQL at ${url} is unreachable: the PostgreSQL suites are SKIPPED.\n!! Set LOCKSTEP_REQUIRE_POSTGRES=1 to make them mandatory (as .ci/run does).\n${bar}\n`);
  }
  return async () => {
    if (!reachable) return;
    // Drop schemas left by this run's test files (each file drops its own; this catches crashes).
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lockstep_t_${process.pid}_%'`);
    for (const r of rows) await c.query(`DROP SCHEMA IF EXISTS ${r.nspname} CASCADE`);
    await c.end();
  };
}
