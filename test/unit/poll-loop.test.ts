/**
 * The background engines' loop (src/runtime/poll-loop.ts), driven step by step: the poll interval is
 * an hour, so the loop only moves when a step did work or it is woken — nothing here waits on time.
 */
import { describe, expect, it } from 'vitest';
import { pollLoop } from '../../src/runtime/poll-loop.ts';

const HOUR = 3_600_000;

/** A step whose rounds the test releases one by one: `next(worked)` ends the current round. */
function steps() {
  let release: ((worked: boolean) => void) | undefined;
  let entered: (() => void) | undefined;
  let enteredAt = new Promise<void>((r) => (entered = r));
  let count = 0;
  return {
    get count() {
      return count;
    },
    step: () => {
      count++;
      entered!();
      return new Promise<boolean>((r) => (release = r));
    },
    /** Resolves when the loop is inside a step (the next one, after `next`). */
    inside: () => enteredAt,
    next(worked: boolean) {
      enteredAt = new Promise<void>((r) => (entered = r));
      const r = release!;
      release = undefined;
      r(worked);
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('poll loop', () => {
  it('goes round at once after a step that worked, sleeps after one that did not, until woken', async () => {
    const s = steps();
    const loop = pollLoop({ pollMs: HOUR, step: s.step, onError: () => undefined });
    expect(loop.state).toBe('idle');
    loop.start();
    expect(loop.state).toBe('running');
    await s.inside();
    expect(s.count).toBe(1);
    s.next(true);
    await s.inside();
    expect(s.count).toBe(2);
    s.next(false); // idle: sleeps for the hour
    for (let i = 0; i < 5; i++) await tick();
    expect(s.count).toBe(2);
    loop.wake();
    await s.inside();
    expect(s.count).toBe(3);
    const stopped = loop.stop();
    expect(loop.state).toBe('stopping');
    s.next(true); // the step in progress finishes; no other starts
    await stopped;
    expect(loop.state).toBe('idle');
    expect(s.count).toBe(3);
  });

  it('does not lose a wake that arrives during a step', async () => {
    const s = steps();
    const loop = pollLoop({ pollMs: HOUR, step: s.step, onError: () => undefined });
    loop.start();
    await s.inside();
    loop.wake(); // while the step runs
    s.next(false);
    await s.inside(); // went round instead of sleeping
    expect(s.count).toBe(2);
    s.next(false);
    for (let i = 0; i < 5; i++) await tick();
    expect(s.count).toBe(2); // that wake was used up: asleep now
    await loop.stop();
    expect(s.count).toBe(2);
  });

  it('reports a step that throws and carries on (as idle: it sleeps until woken)', async () => {
    const errors: unknown[] = [];
    let n = 0;
    let idle = 0;
    let wokenInside: (() => void) | undefined;
    const second = new Promise<void>((r) => (wokenInside = r));
    const loop = pollLoop({
      pollMs: HOUR,
      step: async () => {
        if (++n === 1) throw new Error('database down');
        wokenInside!();
        return false;
      },
      onError: (e) => errors.push(e),
      whenIdle: async () => void idle++,
    });
    loop.start();
    for (let i = 0; i < 5; i++) await tick();
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('database down');
    expect(n).toBe(1); // not retried in a tight loop
    expect(idle).toBe(1);
    loop.wake();
    await second;
    expect(n).toBe(2);
    await loop.stop();
    expect(errors).toHaveLength(1);
  });

  it('stop cuts a sleep short; start after stop runs again', async () => {
    let n = 0;
    const loop = pollLoop({ pollMs: HOUR, step: async () => (n++, false), onError: () => undefined });
    loop.start();
    for (let i = 0; i < 5; i++) await tick();
    expect(n).toBe(1);
    await loop.stop(); // resolves without waiting out the hour
    expect(loop.state).toBe('idle');
    loop.start();
    for (let i = 0; i < 5; i++) await tick();
    expect(n).toBe(2);
    await loop.stop();
  });
});
