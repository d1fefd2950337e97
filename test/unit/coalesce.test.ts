/** The coalescer of concurrent calls and the turn queue (src/check/coalesce.ts), with a hand-driven `run`. */
import { describe, expect, it } from 'vitest';
import { createCoalescer, createTurnQueue } from '../../src/check/coalesce.ts';

/** A `run` whose batches the test finishes by hand. */
function manual() {
  const batches: Array<{ items: number[]; finish: (r: number[] | Error) => void }> = [];
  const run = (items: number[]) =>
    new Promise<number[]>((resolve, reject) => {
      batches.push({ items, finish: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
    });
  return { batches, run };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('createCoalescer', () => {
  it('sends a lone call at once, and the calls made meanwhile together in the next batch', async () => {
    const m = manual();
    const call = createCoalescer(m.run, { maxSize: 10, maxInFlight: 1 });
    const a = call(1);
    expect(m.batches.map((b) => b.items)).toEqual([[1]]);
    const rest = [call(2), call(3), call(4)];
    expect(m.batches).toHaveLength(1);
    m.batches[0]!.finish([10]);
    await tick();
    // The next batch left before the answers of the first were handed out.
    expect(m.batches.map((b) => b.items)).toEqual([[1], [2, 3, 4]]);
    expect(await a).toBe(10);
    m.batches[1]!.finish([20, 30, 40]);
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
  });

  it('never puts a call into a batch already sent', async () => {
    const m = manual();
    const call = createCoalescer(m.run, { maxSize: 10, maxInFlight: 1 });
    void call(1);
    void call(2);
    expect(m.batches[0]!.items).toEqual([1]);
    void call(3);
    expect(m.batches[0]!.items).toEqual([1]);
    m.batches[0]!.finish([1]);
    await tick();
    expect(m.batches[1]!.items).toEqual([2, 3]);
  });

  it('caps a batch at maxSize and keeps maxInFlight batches out', async () => {
    const m = manual();
    const call = createCoalescer(m.run, { maxSize: 2, maxInFlight: 2 });
    const all = [1, 2, 3, 4, 5].map((i) => call(i));
    expect(m.batches.map((b) => b.items)).toEqual([[1], [2]]);
    m.batches[0]!.finish([1]);
    await tick();
    expect(m.batches.map((b) => b.items)).toEqual([[1], [2], [3, 4]]);
    m.batches[1]!.finish([2]);
    await tick();
    m.batches[2]!.finish([3, 4]);
    await tick();
    m.batches[3]!.finish([5]);
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4, 5]);
  });

  it("fails the calls of a failed batch only, and of one whose results do not match its calls", async () => {
    const m = manual();
    const call = createCoalescer(m.run, { maxSize: 10, maxInFlight: 1 });
    const a = call(1);
    const b = call(2);
    m.batches[0]!.finish(new Error('boom'));
    await expect(a).rejects.toThrow('boom');
    await tick();
    m.batches[1]!.finish([2]);
    expect(await b).toBe(2);
    const c = call(3);
    m.batches[2]!.finish([]);
    await expect(c).rejects.toThrow('a batch of 1 calls returned 0 results');
  });

  it('turns a run that throws synchronously into rejected calls', async () => {
    const call = createCoalescer<number, number>(() => {
      throw new Error('sync');
    }, { maxSize: 10, maxInFlight: 1 });
    await expect(call(1)).rejects.toThrow('sync');
    await expect(call(2)).rejects.toThrow('sync');
  });
});

describe('createTurnQueue', () => {
  it('runs the calls of one turn together at its end, each once, in order, after it was made', async () => {
    const ran: Array<{ item: number; turn: number }> = [];
    let turn = 0;
    const call = createTurnQueue(async (item: number) => (ran.push({ item, turn }), item * 10));
    const first = [call(1), call(2), call(3)];
    await Promise.resolve();
    // Nothing ran within the turn the calls were made in, not even in its microtasks.
    expect(ran).toEqual([]);
    turn = 1;
    expect(await Promise.all(first)).toEqual([10, 20, 30]);
    expect(ran).toEqual([1, 2, 3].map((item) => ({ item, turn: 1 })));
    turn = 2;
    // A call made after the turn's calls ran goes with the next turn's.
    expect(await call(4)).toBe(40);
    expect(ran.at(-1)).toEqual({ item: 4, turn: 2 });
  });

  it("fails the call whose run fails, only that one, whether it throws or rejects", async () => {
    const call = createTurnQueue((item: number) => {
      if (item === 2) throw new Error('sync');
      return item === 3 ? Promise.reject(new Error('async')) : Promise.resolve(item);
    });
    const [a, b, c, d] = [call(1), call(2), call(3), call(4)];
    await expect(b).rejects.toThrow('sync');
    await expect(c).rejects.toThrow('async');
    expect([await a, await d]).toEqual([1, 4]);
  });
});
