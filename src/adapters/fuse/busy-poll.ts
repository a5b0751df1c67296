/**
 * Keeps the event loop polling, instead of sleeping, for a short window
 * after the daemon answers a request, while that has lately been worth it.
 *
 * A program walking warm files sends its next request within microseconds
 * of getting the answer, and a daemon asleep in epoll_wait must first be
 * woken for it. That wake-up (an inter-processor interrupt and a scheduler
 * switch, and on a virtual machine an exit to the hypervisor) measured as
 * about a third of a cached request's wall time.
 *
 * Polling only pays when the next request comes within the window. In a
 * warm read-write walk 99% did (measured: the gap from an answer to the
 * next request); in a cold read-only walk, whose few requests each wait for
 * ZooKeeper, 21% did, and polling there took CPU from the program, the
 * page-cache writer and the server, making the walk about 10% slower. So
 * each answer's gap is scored as a hit or a miss, and a window opens only
 * while most recent gaps were hits.
 *
 * The window opens on answers, and only on one that leaves no request
 * unanswered: while a request waits for ZooKeeper the next thing to come
 * is the server's reply, and polling through it took CPU from the server
 * (cp -r of 1,000 files onto a mount was about 12% slower; with this
 * rule and a 100 us window, within the noise of alternating runs). Polling
 * is an immediate callback per turn of the loop, which makes libuv poll
 * with a zero timeout; it stops when a request arrives or the window
 * passes, so an idle mount costs nothing.
 *
 * Whether polling pays at all depends on the machine (waking cheaply, or
 * having no CPU to spare), so it is tried both ways as requests come and
 * kept only where it shortens the cycle (core/fuse/poll-trial.ts).
 *
 * The native reader answers some requests without telling JavaScript
 * (src/native/fuse-fast.c). It polls after those by itself, for the window
 * published here while the trials allow polling and no request waits for
 * its answer, and keeps its own hit rate. Their cycles come back in batches
 * and count in the same trials.
 */
import { DEFAULT_TRIAL, type PollTrialOptions, pollTrial } from '../../core/fuse/poll-trial.js';

export interface BusyPoller {
  /** Request `id` (its FUSE unique) has arrived and will be answered. */
  arrived(id: number): void;
  /** Request `id` has been answered. */
  answered(id: number): void;
  /**
   * The cycle of a request the native reader answered: `ms` from its
   * arrival to the next request's, and whether a window followed it.
   */
  nativeCycle(ms: number, polled: boolean): void;
  /** What polling has done so far, for `zkfsctl status`. */
  readonly counters: PollCounters;
}

export interface PollCounters {
  /** The window in microseconds; 0: polling is off. */
  windowUs: number;
  /** Windows opened. */
  windows: number;
  /** Answers that left nothing waiting, followed by a request within the window or not. */
  hits: number;
  misses: number;
  /** Trials of polling against sleeping, and those in which polling was clearly faster. */
  readonly trials: number;
  readonly won: number;
  /** What the trials concluded: outside them, windows open only while it is true. */
  readonly pays: boolean;
}

/** How fast the hit rate follows recent gaps: each gap counts for 1/8. */
const WEIGHT = 1 / 8;
/** Poll while at least half of the recent gaps were hits. */
const THRESHOLD = 0.5;
/** A request unanswered this long (an answer lost to an interrupted request) no longer counts as waiting. */
const STALE_MS = 1000;

/**
 * A poller with a window of `windowUs` microseconds; 0 never polls.
 * `publish` is told, whenever it may have changed, the window an answer
 * given natively may poll for now: `windowUs`, or 0 while the trials do not
 * allow polling or a request still waits for its answer. `now` reads the
 * time in ms (a test sets cycle lengths with a clock of its own, which a
 * loaded machine cannot stretch past MAX_CYCLE_MS).
 */
export function busyPoller(
  windowUs: number,
  trialOptions: PollTrialOptions = DEFAULT_TRIAL,
  publish: (windowUs: number) => void = () => {},
  now: () => number = () => performance.now(),
): BusyPoller {
  const trial = pollTrial(trialOptions);
  // The trials' counts are read from the trial itself, not copied after every cycle.
  const counters: PollCounters = {
    windowUs: Math.max(0, windowUs),
    windows: 0,
    hits: 0,
    misses: 0,
    get trials() {
      return trial.trials;
    },
    get won() {
      return trial.won;
    },
    get pays() {
      return trial.pays;
    },
  };
  if (windowUs <= 0) return { arrived: () => {}, answered: () => {}, nativeCycle: () => {}, counters };
  /** When the request being served arrived, if none other was pending then (0: not a serial cycle). */
  let loneSince = 0;
  /** The start of the cycle that the next arrival ends, if the last answer ended a lone request. */
  let cycleStart = 0;
  /** Requests not yet answered, oldest first, with when they arrived. */
  const pending = new Map<number, number>();
  const windowMs = windowUs / 1000;
  /** Recent share of answers followed by a request within the window; starts hopeful. */
  let hitRate = 1;
  /** When the last answer was sent, while no request has arrived since (0: none pending). */
  let answeredAt = 0;
  let polling = false;
  const poll = () => {
    if (answeredAt > 0 && trial.allowed && now() - answeredAt < windowMs) setImmediate(poll);
    else polling = false;
  };
  return {
    arrived(id) {
      const at = now();
      loneSince = pending.size === 0 ? at : 0;
      pending.set(id, at);
      publish(0);
      if (cycleStart > 0) {
        trial.cycle(at - cycleStart);
        cycleStart = 0;
      }
      if (answeredAt === 0) return;
      const hit = at - answeredAt < windowMs ? 1 : 0;
      hitRate += (hit - hitRate) * WEIGHT;
      if (hit) counters.hits++;
      else counters.misses++;
      answeredAt = 0;
    },
    answered(id) {
      const at = now();
      pending.delete(id);
      if (pending.size > 0) {
        // Usually nothing is left, and then there is no iterator to make.
        for (const [waiting, since] of pending) {
          if (at - since < STALE_MS) break;
          pending.delete(waiting);
        }
        if (pending.size > 0) return;
      }
      answeredAt = at;
      cycleStart = loneSince;
      loneSince = 0;
      publish(trial.allowed ? windowUs : 0);
      if (polling || hitRate < THRESHOLD || !trial.allowed) return;
      polling = true;
      counters.windows++;
      setImmediate(poll);
    },
    nativeCycle(ms, polled) {
      // A cycle this side began was cut short by a request it never saw.
      cycleStart = 0;
      // Measured under a window since changed: not evidence for the current side of the trial.
      if (polled !== trial.allowed) return;
      trial.cycle(ms);
      publish(pending.size === 0 && trial.allowed ? windowUs : 0);
    },
    counters,
  };
}
