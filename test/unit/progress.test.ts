import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createProgress } from '../../shared/progress.js';

function fakeStream(tty: boolean): PassThrough & { isTTY?: boolean; columns?: number; text(): string } {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number; text(): string };
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  if (tty) {
    s.isTTY = true;
    s.columns = 160;
  }
  s.text = () => Buffer.concat(chunks).toString('utf8');
  return s;
}

const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

void test('on a TTY the bar shows epoch, step/total, loss, samples/s, workers and ETA', async () => {
  const stream = fakeStream(true);
  const p = createProgress({ total: 10, stream: stream as unknown as NodeJS.WriteStream, fps: 50 });
  assert.equal(p.enabled, true);
  for (let step = 1; step <= 3; step++) {
    p.update({ step, epoch: 1, epochs: 2, loss: 150.25 - step, samplesPerSecond: 512.4, workers: 2 });
    await new Promise((r) => setTimeout(r, 40));
  }
  p.log('worker w-1 joined');
  p.update({ step: 3, epoch: 1, epochs: 2, loss: 0.01234567, samplesPerSecond: 480, workers: 1 });
  // A status-only update keeps step, loss and the rest.
  p.update({ step: -1, status: 'paused' });
  await new Promise((r) => setTimeout(r, 60));
  p.stop();
  p.stop();
  const out = strip(stream.text());
  assert.match(out, /epoch 1\/2 .* 3\/10 steps \| loss 147\.3 \| 512 samples\/s \| 2 workers \| ETA /);
  assert.match(out, /loss 0\.01235 \| 480 samples\/s \| 1 workers \| ETA \S+ \| paused/);
  assert.match(out, /worker w-1 joined/);
});

void test('off a TTY it writes nothing (pino lines are the output there)', async () => {
  const stream = fakeStream(false);
  const p = createProgress({ total: 10, stream: stream as unknown as NodeJS.WriteStream });
  assert.equal(p.enabled, false);
  p.update({ step: 1, loss: 1 });
  p.log('hello');
  p.stop();
  await new Promise((r) => setImmediate(r));
  assert.equal(stream.text(), '');
});

void test('a resumed run starts the bar at its step', async () => {
  const stream = fakeStream(true);
  const p = createProgress({ total: 100, stream: stream as unknown as NodeJS.WriteStream, startStep: 40, fps: 50 });
  p.update({ step: 41, loss: 2 });
  await new Promise((r) => setTimeout(r, 40));
  p.stop();
  assert.match(strip(stream.text()), /41\/100 steps/);
});
