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
 * not, and measures each serial cycle (from a request that arrived with
 * none other pending to the next one to arrive after its answer: the
 * daemon's work plus the program's turn plus any wake-up). Alternating
 * blocks, rather than one long run each way, keeps a change of workload (a
 * cold walk turning warm) from favouring either side. The mean of each
 * way's cycles, less their longest quarter, gives the trial's ratio (the
 * mean, because a walk's time is the sum of its cycles). One trial is noisy:
 * on a host where polling cost about 25% overall, single trials of 256
 * cycles each way still came out more than 5% in its favour about one time
 * in four with the plain mean, and one in three with the median. So the
 * verdict goes by a running average of the ratios of recent trials, and
 * polling is allowed for the next stretch only while that average says it
 * is clearly faster. Half of every trial goes the worse way, so while
 * verdicts agree the stretch doubles, up to `maxHold`; a change of verdict
 * brings it back. Cycles longer than `MAX_CYCLE_MS` are idle time or
 * ZooKeeper round trips, not the request rate, and are not counted.
 */

export interface PollTrialOptions {
  /** Cycles measured in each block of a trial. */
  block: number;
  /** Blocks in a trial, alternating polling and not, starting with polling. */
  blocks: number;
  /** Cycles to go by a new verdict before trying again. */
  hold: number;
  /** The longest stretch, reached by doubling `hold` while trials agree. */
  maxHold: number;
}

export const DEFAULT_TRIAL: PollTrialOptions = { block: 64, blocks: 8, hold: 4096, maxHold: 65_536 };

/** How much shorter polled cycles must be on average: polling also takes CPU that no cycle shows. */
export const MARGIN = 0.05;
/** The weight of the latest trial in the running average of log ratios. */
const WEIGHT = 1 / 4;

/** A cycle longer than this waited for something else than the program and the daemon. */
export const MAX_CYCLE_MS = 5;

export interface PollTrial {
  /** Whether answers now may open a polling window. */
  readonly allowed: boolean;
  /** Records one serial cycle of `ms`, measured under the current `allowed`. */
  cycle(ms: number): void;
  /** Trials finished, and those in which polling gave a clearly shorter mean cycle. */
  readonly trials: number;
  readonly won: number;
  /** The verdict of the trials so far: between trials, polling is allowed only when true. */
  readonly pays: boolean;
}

/**
 * The mean of the shortest three quarters: the longest cycles are mostly the
 * program's own slow turns (xargs starting another cat, find reading a
 * directory), which polling neither causes nor saves, and which made single
 * trials swing both ways.
 */
function trimmedMean(values: readonly number[]): number {
  const kept = [...values].sort((a, b) => a - b).slice(0, Math.ceil(values.length * 0.75));
  let sum = 0;
  for (const v of kept) sum += v;
  return sum / kept.length;
}

export function pollTrial(options: PollTrialOptions = DEFAULT_TRIAL): PollTrial {
  let trials = 0;
  let won = 0;
  /**
   * Running average of ln(polled cycle / slept cycle) over trials. It starts
   * at even, so one trial alone turns polling on only when polling was
   * clearly faster in it (by about a fifth), and marginal wins take a few.
   */
  let score = 0;
  /** Cycles measured in this trial, by whether polling was allowed. */
  let polled: number[] = [];
  let slept: number[] = [];
  /** Cycles counted in the current block, or since the verdict while holding. */
  let count = 0;
  let block = 0;
  let holding = false;
  /** The current stretch between trials. */
  let hold = options.hold;
  let allowed = true;
  let pays = false;

  const decide = () => {
    const ratio = Math.log(trimmedMean(polled) / trimmedMean(slept));
    if (Number.isFinite(ratio)) {
      score += (ratio - score) * WEIGHT;
      trials++;
      if (ratio < Math.log(1 - MARGIN)) won++;
    }
    const verdict = trials > 0 && score < Math.log(1 - MARGIN);
    // Trying costs (half a trial goes the worse way): while trials keep agreeing, try less often.
    hold = trials > 1 && verdict === pays ? Math.min(options.maxHold, hold * 2) : options.hold;
    pays = verdict;
    allowed = pays;
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
    get pays() {
      return pays;
    },
    cycle(ms) {
      if (!(ms >= 0 && ms <= MAX_CYCLE_MS)) return;
      if (holding) {
        if (++count < hold) return;
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
