/**
 * Credentials never reach a log line or a description: the userinfo of a database URL is masked by
 * the URL parser (issue 10, item 3: a password containing `@` leaked its tail through a regex).
 */
import { describe, expect, it } from 'vitest';
import { maskUrl, openPostgres } from '../../src/storage/postgres-engine.ts';

describe('maskUrl', () => {
  it('masks a password that contains @ entirely', () => {
    expect(maskUrl('postgres://user:pa@ss@host/db')).toBe('postgres://***@host/db');
  });

  it('masks a user without a password, an encoded password, and keeps host, port, path and query', () => {
    expect(maskUrl('postgres://postgres@127.0.0.1:5432/test')).toBe('postgres://***@127.0.0.1:5432/test');
    expect(maskUrl('postgresql://u:p%40x%3Ay@db.example:6543/app?schema=s1')).toBe('postgresql://***@db.example:6543/app?schema=s1');
  });

  it('leaves a URL without credentials as it is and prints nothing of one that does not parse', () => {
    expect(maskUrl('postgres://host/db')).toBe('postgres://host/db');
    expect(maskUrl('postgres://user:secret@[bad')).not.toContain('secret');
  });

  it("is what the PostgreSQL engine's description shows", async () => {
    // Opening a pool does not connect; nothing is sent to this address.
    const db = openPostgres('postgres://user:pa@ss@127.0.0.1:1/db');
    try {
      expect(db.description).toBe('postgres postgres://***@127.0.0.1:1/db');
      expect(db.description).not.toMatch(/pa|ss@/);
    } finally {
      await db.close();
    }
  });
});
