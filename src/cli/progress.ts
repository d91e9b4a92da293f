// A progress bar with rate and ETA (cli-progress) for long copies, only when stdout is a
// terminal; otherwise nothing is drawn (scripts and --json get clean output).
import { SingleBar, Presets } from 'cli-progress';
import { formatSize } from '../config/size';
import type { CliContext } from './context';

export interface Progress {
  update(done: number): void;
  stop(): void;
}

export function progressBar(ctx: CliContext, label: string, total: number, enabled = true): Progress {
  const stream = ctx.stdout as NodeJS.WriteStream;
  if (!enabled || !stream.isTTY) return { update() {}, stop() {} };
  const started = Date.now();
  const bar = new SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% {doneText}/{totalText} {rateText} ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    },
    Presets.shades_classic,
  );
  const texts = (done: number) => {
    const s = (Date.now() - started) / 1000;
    return { doneText: formatSize(done), totalText: formatSize(total), rateText: s > 0 ? `${formatSize(Math.round(done / s))}/s` : '' };
  };
  bar.start(total, 0, texts(0));
  return {
    update: (done) => bar.update(done, texts(done)),
    stop: () => bar.stop(),
  };
}
