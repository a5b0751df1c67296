/**
 * Whether polling for the next FUSE request pays on this machine, found by
 * trying it both ways on the requests actually coming in.
 *
 * Polling saves the wake-up of a sleeping daemon, and costs a CPU kept busy
 * with zero-timeout epoll calls. Which is more depends on the machine: on
 * one where a wake-up took about 30 us, a warm read-write walk was faster
 * polling; on one with 2 CPUs and costly system calls (page-table isolation
 * on, a wake-up about 15 us), the same walk was about 25% slower polling,
 * because the CPU it kept busy was one the walking program needed.
 *
 * So the poller alternates short blocks of answers with polling allowed and
 * not, measures each serial cycle (from a request that arrived with none
 * other pending to the next one to arrive after its answer: the daemon's
 * work plus the program's turn plus any wake-up), and then, for a long
 * stretch, polls only if the median cycle was shorter polling. Alternating
 * blocks, rather than one long run each way, keeps a change of workload
 * (a cold walk turning warm) from favouring either side. Cycles longer than
 * `MAX_CYCLE_MS` are idle time or ZooKeeper round trips, not the request
 * rate, and are not counted.
 */

export interface PollTrialOptions {
  /** Cycles measured in each block of a trial. */
  block: number;
  /** Blocks in a trial, alternating polling and not, starting with polling. */
  blocks: number;
  /** Cycles to go by the verdict before trying again. */
  hold: number;
}

export const DEFAULT_TRIAL: PollTrialOptions = { block: 32, blocks: 8, hold: 8192 };

/** A cycle longer than this waited for something else than the program and the daemon. */
export const MAX_CYCLE_MS = 5;

export interface PollTrial {
  /** Whether answers now may open a polling window. */
  readonly allowed: boolean;
  /** Records one serial cycle of `ms`, measured under the current `allowed`. */
  cycle(ms: number): void;
  /** Trials finished, and those in which polling gave the shorter median cycle. */
  readonly trials: number;
  readonly won: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function pollTrial(options: PollTrialOptions = DEFAULT_TRIAL): PollTrial {
  let trials = 0;
  let won = 0;
  /** Cycles measured in this trial, by whether polling was allowed. */
  let polled: number[] = [];
  let slept: number[] = [];
  /** Cycles counted in the current block, or since the verdict while holding. */
  let count = 0;
  let block = 0;
  let holding = false;
  let allowed = true;

  const decide = () => {
    trials++;
    allowed = median(polled) < median(slept);
    if (allowed) won++;
    polled = [];
    slept = [];
    holding = true;
    count = 0;
  };

  return {
    get allowed() {
      return allowed;
    },
    get trials() {
      return trials;
    },
    get won() {
      return won;
    },
    cycle(ms) {
      if (!(ms >= 0 && ms <= MAX_CYCLE_MS)) return;
      if (holding) {
        if (++count < options.hold) return;
        holding = false;
        count = 0;
        block = 0;
        allowed = true;
        return;
      }
      (allowed ? polled : slept).push(ms);
      if (++count < options.block) return;
      count = 0;
      if (++block < options.blocks) allowed = !allowed;
      else decide();
    },
  };
}
