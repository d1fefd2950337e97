/**
 * The loop every background engine runs (the reconciliation worker, the delivery engine): take a
 * step; when it found nothing to do, sleep until woken or until the poll interval elapses. A wake
 * that arrives while a step runs is not lost: the loop goes round again at once instead of
 * sleeping. A step that throws is reported and counts as idle (so a database that is down is
 * retried at the poll interval, not in a tight loop).
 */

export interface PollLoopOptions {
  pollMs: number;
  /** One round of work; true when it did something (go round again at once). */
  step: () => Promise<boolean>;
  /** Called with what a step threw; the loop carries on. */
  onError: (error: unknown) => void;
  /** Before sleeping after an idle step (housekeeping); it must not throw. */
  whenIdle?: () => Promise<void>;
}

export interface PollLoop {
  /** `idle` (never started, or stopped), `running`, or `stopping` (stop asked, the current step finishing). */
  readonly state: 'idle' | 'running' | 'stopping';
  start(): void;
  /** Cuts a sleep short, or, during a step, makes the loop go round again at once. */
  wake(): void;
  /** Stops after the current step; resolves when the loop has ended. */
  stop(): Promise<void>;
}

export function pollLoop(o: PollLoopOptions): PollLoop {
  let running = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let woken = false;

  const sleep = () =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, o.pollMs);
      wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });

  async function run() {
    while (running) {
      let worked = false;
      try {
        worked = await o.step();
      } catch (error) {
        o.onError(error);
      }
      if (!running) break;
      if (worked) continue;
      await o.whenIdle?.();
      if (woken) {
        woken = false;
        continue;
      }
      await sleep();
      wakeUp = undefined;
      woken = false;
    }
  }

  return {
    get state() {
      return running ? 'running' : loop ? 'stopping' : 'idle';
    },
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    wake() {
      woken = true;
      wakeUp?.();
    },
    async stop() {
      running = false;
      wakeUp?.();
      await loop;
      loop = undefined;
    },
  };
}
