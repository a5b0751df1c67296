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
 * daemon's work plus the program's turn plus any wake-up). Each block's
 * cycles, less their longest quarter, give its mean (the mean, because a
 * walk's time is the sum of its cycles), and each two neighbouring blocks
 * a ratio; the trial's ratio is the median of those. Comparing only
 * neighbours, in the order polled, slept, slept, polled (so a steady drift
 * favours each side in half the pairs), keeps a change of workload from
 * deciding the trial. It did, measured: the first trial of a new mount's
 * cold walk began with about 200 cycles fifty times longer than the rest
 * (the daemon's code not yet compiled, its first listings), two thirds of
 * them in polled blocks; pooled, they made polling look 1.7 and 6 times
 * slower (two runs) where later trials found it 1.3 to 3 times faster,
 * and the walk went without polling for most of its length. One trial is
 * noisy: on a host where polling cost about 25% overall, single trials of
 * 256 cycles each way still came out more than 5% in its favour about one
 * time in four with the plain mean of all cycles, and one in three with
 * their median. So the verdict goes by a running average of the ratios of
 * recent trials, and polling is allowed for the next stretch only while
 * that average says it is clearly faster. Half of every trial goes the
 * worse way, so while verdicts agree the stretch doubles, up to `maxHold`;
 * a change of verdict brings it back. Cycles longer than `MAX_CYCLE_MS` are
 * idle time or ZooKeeper round trips, not the request rate, and are not
 * counted.
 */

export interface PollTrialOptions {
  /** Cycles measured in each block of a trial. */
  block: number;
  /** Blocks in a trial (even): polled, slept, slept, polled, and so on. */
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

/** Blocks go polled, slept, slept, polled, and again: each pair of neighbours has one of each. */
function pollsInBlock(block: number): boolean {
  return block % 4 === 0 || block % 4 === 3;
}

/** The middle value, or the mean of the middle two; NaN for none. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
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
  /** Cycles measured in the current block. */
  let cycles: number[] = [];
  /** The current pair's first block's trimmed mean, and ln(polled / slept) of each pair so far. */
  let firstOfPair = 0;
  let pairs: number[] = [];
  /** Cycles counted in the current block, or since the verdict while holding. */
  let count = 0;
  let block = 0;
  let holding = false;
  /** The current stretch between trials. */
  let hold = options.hold;
  let allowed = true;
  let pays = false;

  const decide = () => {
    const ratio = median(pairs);
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
    pairs = [];
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
      cycles.push(ms);
      if (++count < options.block) return;
      const mean = trimmedMean(cycles);
      cycles = [];
      count = 0;
      if (block % 2 === 0) firstOfPair = mean;
      else pairs.push(Math.log(allowed ? mean / firstOfPair : firstOfPair / mean));
      if (++block < options.blocks) allowed = pollsInBlock(block);
      else decide();
    },
  };
}
