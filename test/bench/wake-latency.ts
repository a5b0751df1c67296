/**
 * What one thread waking another costs on this machine: two threads hand a
 * turn back and forth through a futex (Atomics.wait / Atomics.notify), each
 * sleeping until the other wakes it, as a program blocked in open() sleeps
 * until the FUSE daemon's answer wakes it. Half a round trip is one wake-up.
 *
 * The zkfs bench uses it to bound what a synchronous FUSE request per file
 * can cost at least, measured in the same run as the walks it explains.
 */
import { Worker } from 'node:worker_threads';

/** The other side of the ping-pong, as CommonJS for an eval'd worker. */
const PONG = `
const { workerData, parentPort } = require('node:worker_threads');
const turn = new Int32Array(workerData.shared);
parentPort.postMessage('ready');
for (let i = 0; i < workerData.rounds; i++) {
  while (Atomics.load(turn, 0) !== 1) Atomics.wait(turn, 0, 0);
  Atomics.store(turn, 0, 0);
  Atomics.store(turn, 1, 1);
  Atomics.notify(turn, 1);
}
`;

async function roundTripUs(rounds: number): Promise<number> {
  const shared = new SharedArrayBuffer(8);
  const turn = new Int32Array(shared);
  const worker = new Worker(PONG, { eval: true, workerData: { shared, rounds } });
  try {
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) {
      Atomics.store(turn, 0, 1);
      Atomics.notify(turn, 0);
      while (Atomics.load(turn, 1) !== 1) Atomics.wait(turn, 1, 0);
      Atomics.store(turn, 1, 0);
    }
    return Number(process.hrtime.bigint() - started) / 1000 / rounds;
  } finally {
    await worker.terminate();
  }
}

/** Microseconds per wake-up of a sleeping thread by another: half the best of three ping-pong runs. */
export async function wakeUpUs(rounds = 5000): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 3; run++) best = Math.min(best, await roundTripUs(rounds));
  return best / 2;
}
