/**
 * The access-history worker thread (started by src/audit/history-pool.ts): receives one
 * organization's change log in pages, replays it through a scratch engine (the composition root's
 * replay engine, every change inline) and answers the question asked of the past.
 */
import { parentPort } from 'node:worker_threads';
import { createLockstep } from './app.ts';
import { ask, REPLAY_POLICY, replayPages, type ChangeRow, type HistoryQuestion } from './audit/history.ts';
import type { FromWorker, ToWorker } from './audit/history-pool.ts';
import { LockstepError } from './domain/errors.ts';

const port = parentPort!;

/** The pages of the current replay, as an async iterable fed by messages. */
function feed() {
  const pages: ChangeRow[][] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(rows: ChangeRow[]) {
      pages.push(rows);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (pages.length > 0) yield pages.shift()!;
        else if (ended) return;
        else await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

let current: ReturnType<typeof feed> | undefined;

port.on('message', (m: ToWorker) => {
  if (m.type === 'rows') return current?.push(m.rows);
  if (m.type === 'end') return current?.end();
  const pages = (current = feed());
  const question: HistoryQuestion = m.question;
  replayPages(pages, (db, newId, now) => createLockstep(db, { defaultPolicy: REPLAY_POLICY, newId, now }), m.org, m.at, ask(m.org, question)).then(
    (r) => port.postMessage({ type: 'done', revision: r.revision, result: r.result } satisfies FromWorker),
    (e: unknown) =>
      port.postMessage(
        (e instanceof LockstepError
          ? { type: 'error', code: e.code, message: e.message, ...(e.field === undefined ? {} : { field: e.field }) }
          : { type: 'error', message: e instanceof Error ? e.message : String(e) }) satisfies FromWorker,
      ),
  );
});
