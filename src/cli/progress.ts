/**
 * Progress of a long `apply`, on stderr: a bar when stderr is a terminal, otherwise (CI logs, pipes)
 * a plain line at every tenth of the way. Small files print nothing.
 */
import cliProgress from 'cli-progress';

/** Below this many writes an apply takes well under a second: no progress output. */
export const PROGRESS_THRESHOLD = 1000;

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

export interface ProgressLabels {
  label?: string;
  unit?: string;
  threshold?: number;
}

export function createProgress(total: number, stream: NodeJS.WriteStream = process.stderr, labels: ProgressLabels = {}): Progress {
  const label = labels.label ?? 'apply';
  const unit = labels.unit ?? 'writes';
  if (total < (labels.threshold ?? PROGRESS_THRESHOLD)) return { update() {}, stop() {} };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | eta {eta_formatted}`, stream, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return { update: (done) => bar.update(done), stop: () => bar.stop() };
  }
  let nextTenth = 1;
  return {
    update(done) {
      if (done * 10 < nextTenth * total) return;
      while (done * 10 >= nextTenth * total) nextTenth++;
      stream.write(`${label}: ${done}/${total} ${unit} (${Math.floor((done * 100) / total)}%)\n`);
    },
    stop() {},
  };
}
