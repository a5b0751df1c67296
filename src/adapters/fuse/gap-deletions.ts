/**
 * Names deleted by another client while the mount's watch was not in place
 * (the connection lost, the session expired): the watch never reports
 * them, and memory is emptied in between, so orphans.ts would have nothing
 * to answer a program holding such a file open with, and the kernel's node
 * would go on standing for the name, for whatever is made under it next.
 *
 * So when the watch goes, what memory holds of every name the kernel holds
 * is taken (as a deletion seen through the watch takes it), with which node
 * the name stood for (the transaction that created it) and, for each
 * directory holding such names, the last change to its children. When the
 * watch is back, each of those directories is listed afresh: a name no
 * longer in it was deleted in between. A directory whose children changed
 * meanwhile may also hold a name deleted and made again: each of its names
 * the kernel still holds is looked up, and one created since is handled as
 * deleted too, so that a program holding the old file goes on reading the
 * old file, and the name becomes a new node. "Created since" is told by the
 * node memory knew then; where memory no longer held it (its entry evicted
 * from a bounded cache), by the last transaction the session had seen when
 * the watch went: the kernel learns of a node only from a reply, which
 * comes after the node's creation, so a node created after that
 * transaction is not the one the kernel held. Only the first gap's picture
 * counts until the watch is back: memory is empty after it.
 *
 * Until those checks are done, a read or open by path of a name the kernel
 * held may get the new node's data for the old node, whose size the kernel
 * holds: a file cut short, or padded with zeros. Such requests wait for
 * settled() (ops.ts), then find the old node gone and answer as it was.
 * A lookup or listing of a held name waits for them too: handed out before
 * them, the old node would take the new file's attributes, then be found
 * gone and answer with the old file's data. A change of a held node's
 * attributes (fchmod on a descriptor of the old file), or of the names in
 * a held directory (an unlink in a program's working directory), would
 * change the new one: it waits for the checks as long as an operation
 * waits for the connection, and 5 s more (ops.ts). And a name the kernel is handed
 * while the watch is down is in no picture: a lookup or listing whose reads
 * span a gap reads again once settled() (ops.ts, listings.ts), so that the
 * kernel does not take a node read before the watch was back, which another
 * host may have replaced unheard of.
 */
import type { NodeTable } from '../../core/fuse/node-table.js';
import { isFsError } from '../../core/zkfs/errors.js';
import { baseName, parentPath } from '../../core/zkfs/paths.js';
import type { Logger } from '../logger.js';
import type { NodeIdentity, ZkVfs } from '../zkfs/vfs.js';
import type { Leaving, Orphans } from './orphans.js';

/** A name the kernel held when the watch went, and the node it stood for then (if memory knew). */
interface Held {
  leaving: Leaving;
  created: bigint | undefined;
}

/**
 * The longest a request waits for the checks: they take a listing per
 * directory once the watch is back; should it never come back (a server
 * that lost persistent watches), requests go on after this.
 */
const SETTLE_WAIT_MS = 5000;

/**
 * Reads of what a lookup or listing hands the kernel, at most, while watch
 * gaps keep coming: each read across one is made again once its checks are
 * done (ops.ts, listings.ts).
 */
const GAP_TRIES = 10;

/** What a lookup or listing read, and where reports of others' changes stood before (ZkVfs.changeMark). */
export interface GapFreeRead<T> {
  value: T;
  mark: number | undefined;
  /** False when gaps kept coming, GAP_TRIES times, and this read too spanned one. */
  clean: boolean;
}

/**
 * `read()`, made again once `settled()` whenever it spanned a watch gap
 * (the connection went, the watch was set again, or it was down): what it
 * read then may be of a node replaced unheard of, which is in no picture.
 */
export async function readOutsideGaps<T>(
  watch: Pick<ZkVfs, 'watchEpoch' | 'watchDown' | 'changeMark'>,
  settled: () => Promise<void> | undefined,
  read: () => Promise<T>,
): Promise<GapFreeRead<T>> {
  for (let gaps = 1; ; gaps++) {
    const epoch = watch.watchEpoch;
    const mark = watch.changeMark();
    const value = await read();
    const clean = watch.watchEpoch === epoch && !watch.watchDown;
    if (clean || gaps === GAP_TRIES) return { value, mark, clean };
    await settled();
  }
}

interface Picture {
  held: Held[];
  /** The directories holding them, as memory knew them then. */
  dirs: Map<string, NodeIdentity | undefined>;
  /** The last transaction the session had seen when the watch went, if known. */
  lastZxid: bigint | undefined;
}

export class GapDeletions {
  private taken: Picture | undefined;
  /** From the watch going until the names it held have been checked. */
  private checking: { done: Promise<void>; finish: () => void } | undefined;

  constructor(
    private readonly nodes: NodeTable,
    private readonly orphans: Orphans,
    private readonly vfs: Pick<ZkVfs, 'readdir' | 'cachedIdentity' | 'identity' | 'identities'>,
    /**
     * A name found deleted (as for a deletion the watch reports, fuse.ts);
     * `madeAgain` when a new node now stands under it.
     */
    private readonly gone: (leaving: Leaving, madeAgain: boolean) => void,
    private readonly log: Logger,
  ) {}

  /** The watch is gone; memory still holds what it held. */
  watchLost(lastZxid?: bigint): void {
    if (this.taken) return;
    // A gap after one still being checked: requests from now on wait for this one's checks.
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    this.checking = { done, finish };
    const picture: Picture = { held: [], dirs: new Map(), lastZxid };
    for (const path of this.nodes.paths()) {
      const leaving = this.orphans.leaving(path);
      if (!leaving) continue;
      picture.held.push({ leaving, created: this.vfs.cachedIdentity(path)?.created });
      const dir = parentPath(path);
      if (!picture.dirs.has(dir)) picture.dirs.set(dir, this.vfs.cachedIdentity(dir));
    }
    this.taken = picture;
  }

  /**
   * Undefined while no names held across a watch gap wait to be checked;
   * else settles once they have been (or after `capMs`).
   */
  settled(capMs = SETTLE_WAIT_MS): Promise<void> | undefined {
    const checking = this.checking;
    if (!checking) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const cap = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, capMs);
      timer.unref();
    });
    return Promise.race([checking.done, cap]).finally(() => clearTimeout(timer));
  }

  /** The watch is back: finds the names deleted (or deleted and made again) meanwhile. */
  async watchBack(): Promise<void> {
    const checking = this.checking;
    try {
      await this.check();
    } finally {
      if (this.checking === checking) this.checking = undefined;
      checking?.finish();
    }
  }

  private async check(): Promise<void> {
    const picture = this.taken;
    this.taken = undefined;
    if (!picture || picture.held.length === 0) return;
    const byDir = new Map<string, Held[]>();
    for (const held of picture.held) {
      const dir = parentPath(held.leaving.path);
      const list = byDir.get(dir);
      if (list) list.push(held);
      else byDir.set(dir, [held]);
    }
    let deleted = 0;
    let madeAgain = 0;
    await Promise.all(
      [...byDir].map(async ([dir, helds]) => {
        const names = await this.namesIn(dir);
        if (!names) return;
        const present: Held[] = [];
        for (const held of helds) {
          if (names.has(baseName(held.leaving.path))) present.push(held);
          else {
            deleted++;
            this.gone(held.leaving, false);
          }
        }
        for (const held of await this.replaced(dir, picture, present)) {
          deleted++;
          madeAgain++;
          this.gone(held.leaving, true);
        }
      }),
    );
    if (deleted > 0)
      this.log.info(
        `zkfs: ${deleted} names the kernel held were deleted while the watch was down` +
          (madeAgain > 0 ? ` (${madeAgain} of them made again)` : ''),
      );
  }

  /** The names in `dir` now: none if it is gone; undefined if that cannot be told. */
  private async namesIn(dir: string): Promise<Set<string> | undefined> {
    try {
      // Not a program's listing: reading its files ahead would reload all the kernel held at once.
      return new Set(await this.vfs.readdir(dir, false));
    } catch (error) {
      if (isFsError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return new Set();
      this.cannotTell(dir, error);
      return undefined;
    }
  }

  /**
   * Which of `present`, names still in `dir`, now stand for a node created
   * since the watch went. None when `dir` is the directory it was and no
   * child came or went in it (one request); otherwise the names the kernel
   * still holds are looked up, together.
   */
  private async replaced(dir: string, picture: Picture, present: Held[]): Promise<Held[]> {
    const { lastZxid } = picture;
    const known = present.filter((held) => held.created !== undefined || lastZxid !== undefined);
    if (known.length === 0) return [];
    try {
      const before = picture.dirs.get(dir);
      if (before || lastZxid !== undefined) {
        const now = await this.vfs.identity(dir);
        if (now && unchangedSince(now, before, lastZxid)) return [];
      }
      const still = known.filter(({ leaving }) => this.nodes.idOf(leaving.path) === leaving.id);
      const now = await this.vfs.identities(still.map(({ leaving }) => leaving.path));
      return still.filter((held, i) => {
        const node = now[i];
        if (!node) return true;
        return held.created !== undefined ? node.created !== held.created : node.created > (lastZxid ?? 0n);
      });
    } catch (error) {
      this.cannotTell(dir, error);
      return [];
    }
  }

  private cannotTell(dir: string, error: unknown): void {
    this.log.debug(
      `zkfs: cannot tell what was deleted from ${dir} while the watch was down: ${String(error)}`,
    );
  }
}

/**
 * Whether a directory is the one it was when the watch went, with no child
 * made or removed in it since: by what memory knew of it then, or else by
 * the last transaction the session had seen.
 */
function unchangedSince(
  now: NodeIdentity,
  before: NodeIdentity | undefined,
  lastZxid: bigint | undefined,
): boolean {
  if (before) return now.created === before.created && now.childrenChanged === before.childrenChanged;
  return lastZxid !== undefined && now.created <= lastZxid && now.childrenChanged <= lastZxid;
}
