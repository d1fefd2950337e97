/**
 * `--url` / `--key`: commands that can talk to a running server instead of opening the database.
 * The server is named by `--url` or `$LOCKSTEP_URL` (a `--db` flag wins over the variable, so a
 * shell that exports LOCKSTEP_URL can still open a file), the key by `--key` or `$LOCKSTEP_KEY`.
 * The HTTP client is the repository's typed one (packages/client).
 */
import type { Command } from 'commander';
import { createClient, type LockstepClient } from '../../packages/client/src/index.ts';
import { Unreachable, UsageError } from './errors.ts';

export interface RemoteOptions {
  url?: string;
  key?: string;
  db?: string;
  schema?: string;
}

export function addRemoteOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'a running server to ask instead of opening the database (default: $LOCKSTEP_URL)')
    .option('--key <key>', 'API key for --url (default: $LOCKSTEP_KEY)');
}

/** Tries of a read the server answered 503 (the client's default). */
const RETRY_ATTEMPTS = 3;

/** The client the options name, or undefined: open the database. */
export function remote(opts: RemoteOptions, env: NodeJS.ProcessEnv = process.env): LockstepClient | undefined {
  if (opts.url !== undefined && opts.db !== undefined) throw new UsageError('--url and --db name two stores: give one');
  const url = opts.url ?? (opts.db === undefined && opts.schema === undefined && env.LOCKSTEP_URL ? env.LOCKSTEP_URL : undefined);
  if (url === undefined) {
    if (opts.key !== undefined) throw new UsageError('--key is for a server: give --url (or $LOCKSTEP_URL) too');
    return undefined;
  }
  if (opts.schema !== undefined) throw new UsageError('--schema applies to --db, not to --url');
  if (!/^https?:\/\/[^/\s]+/.test(url)) throw new UsageError(`--url must be an http(s) URL, got '${url}'`);
  const key = opts.key ?? env.LOCKSTEP_KEY;
  if (key === undefined || key === '') throw new UsageError('a server needs an API key: give --key or set $LOCKSTEP_KEY');
  const base = url.replace(/\/+$/, '');
  return createClient({
    url: base,
    key,
    // The client's retry of a 503 to a read (a check whose revision the read model has not reached,
    // a busy database), said on stderr so that a slow command is not a silent one.
    retry: {
      onRetry: (r) => {
        process.stderr.write(`${r.problem.code}: ${r.problem.detail}; retrying in ${(r.delayMs / 1000).toFixed(1)} s (attempt ${r.attempt + 1} of ${RETRY_ATTEMPTS})\n`);
      },
      attempts: RETRY_ATTEMPTS,
    },
    async fetch(input) {
      try {
        return await fetch(input);
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new Unreachable(`no answer from ${base}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, { cause: e });
      }
    },
  });
}
