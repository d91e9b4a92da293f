// The progress bar of long copies: drawn (with rate and ETA) only on a terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { progressBar } from '../../src/cli/progress';
import type { CliContext } from '../../src/cli/context';

function ctxWith(isTTY: boolean): { ctx: CliContext; text: () => string } {
  const stream = new PassThrough() as PassThrough & {
    isTTY?: boolean;
    columns?: number;
    cursorTo?: unknown;
    clearLine?: unknown;
    moveCursor?: unknown;
  };
  stream.isTTY = isTTY;
  stream.columns = 120;
  stream.cursorTo = (_x: number, _y?: unknown, cb?: () => void) => {
    cb?.();
    return true;
  };
  stream.clearLine = (_d: number, cb?: () => void) => {
    cb?.();
    return true;
  };
  stream.moveCursor = (_x: number, _y: number, cb?: () => void) => {
    cb?.();
    return true;
  };
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString()));
  return { ctx: { stdout: stream, stderr: new PassThrough(), cwd: '/', env: {} }, text: () => out };
}

test('on a terminal the bar shows percentage, bytes, rate and ETA', async () => {
  const { ctx, text } = ctxWith(true);
  const bar = progressBar(ctx, 'allocating', 8 * 1024 * 1024);
  await new Promise((r) => setTimeout(r, 20));
  bar.update(4 * 1024 * 1024);
  bar.stop();
  await new Promise((r) => setImmediate(r));
  assert.match(text(), /allocating \[.*\] 50% 4 MiB\/8 MiB [\d.]+ [KMG]?i?B\/s ETA/);
});

test('without a terminal nothing is drawn', async () => {
  const { ctx, text } = ctxWith(false);
  const bar = progressBar(ctx, 'importing', 100);
  bar.update(50);
  bar.stop();
  await new Promise((r) => setImmediate(r));
  assert.equal(text(), '');
});
