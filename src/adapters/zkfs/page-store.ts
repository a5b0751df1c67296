/**
 * Reading ahead into the kernel's page cache (FUSE_NOTIFY_STORE): when a
 * program starts reading a file, the cached contents of the files listed
 * after it in its directory are put into the kernel's page cache, so that
 * reading those needs no READ request. A cold `find | xargs cat` then costs
 * one READ per window of files instead of one per file.
 *
 * A store cannot be called back: one still on its way when a program here
 * truncates or writes the file would put the old bytes, and the old size,
 * back into the kernel over the new ones. So a file open here for writing,
 * or holding changes from such an open, gets no store (one open only for
 * reading does: `cat` opens the next file before its store is written, and
 * would otherwise read it with a READ), and what changes a file here waits
 * for the store on its way
 * (VfsContext.settleStores) before it answers: an open for writing, and a
 * truncate by path. A change made elsewhere arrives through the watch, and
 * the notifier runs its invalidation only after the store.
 *
 * A store must never put stale bytes, or a file's bytes into a directory or
 * symbolic link (whose pages hold a cached listing or target; the kernel
 * does not check). So a store is decided when its turn comes, from what the
 * cache holds then: the same data entry as when it was queued (a change
 * drops it), a regular file by the mount's type rules, and no file open for
 * writing. The notifier never lets an invalidation of the path overtake it.
 */
import { storeData } from '../../core/fuse/notifications.js';
import { storedType } from '../../core/zkfs/attrs.js';
import { nodeKind } from '../../core/zkfs/modes.js';
import { baseName, DATA_FILE, isHiddenChild, parentPath, toZnode, zkChild } from '../../core/zkfs/paths.js';
import { position } from '../../core/zkfs/sorted-names.js';
import type { KernelNotifier } from './kernel-notify.js';
import { isReadOnlyAt } from './open-files.js';
import type { VfsContext } from './resolve.js';
import type { NodeData } from './tree.js';
import type { WatchedTree } from './watch-cache.js';

/** Larger files are left to READ: a store copies the whole content through the kernel at once. */
const MAX_STORE_BYTES = 64 * 1024;

/** Whether the cache says, right now, that `path` is a regular file whose data is `node`. */
function isCachedFile(
  ctx: VfsContext,
  tree: WatchedTree,
  path: string,
  znode: string,
  node: NodeData,
): boolean {
  if (tree.data.peek(znode) !== node) return false;
  const open = ctx.files.byZnode(znode);
  if (open && !isReadOnlyAt(open, node.stat.version)) return false;
  const stat = tree.stats.peek(znode);
  if (!stat || stat.version !== node.stat.version) return false;
  const name = baseName(path);
  if (name === DATA_FILE) return false;
  const links = tree.links.peek(tree.linksPath);
  if (!links || links.value.has(path)) return false;
  const meta = tree.metas.peek(toZnode(ctx.root, parentPath(path)));
  if (!meta) return false;
  const kind = nodeKind(ctx.mode, {
    numChildren: stat.numChildren,
    dataLength: stat.dataLength,
    storedType: storedType(meta.value.entries.get(name)),
  });
  return kind === 'file';
}

/**
 * Whether the data of `znode`, not in memory, is worth reading ahead: a
 * node known to have no children and data small enough to store, not being
 * read already.
 */
function wantsData(tree: WatchedTree, znode: string): boolean {
  if (tree.data.inFlight(znode)) return false;
  const stat = tree.stats.peek(znode);
  // Unknown (dropped for room): read it, its stat comes along.
  if (stat === undefined) return true;
  if (stat === null) return false;
  return stat.numChildren === 0 && stat.dataLength > 0 && stat.dataLength <= MAX_STORE_BYTES;
}

/** Stored again and lost again within this long: the kernel drops pages as fast as they come. */
const LOST_AGAIN_MS = 10_000;
/** How long a listing whose stores were lost again is left to READ. */
const LOSSY_MS = 60_000;

/** Files after the one being read that one read stores ahead, at first. */
const WINDOW = 64;
/**
 * At most, once programs have read through whole windows: a walk of
 * directories of 99 files then costs one READ per directory, not two.
 */
const MAX_WINDOW = 512;
/** Siblings looked at, at most, for the next listed directory a window goes on into. */
const CONTINUE_SCAN = 8;
/** Bytes one read stores ahead at most: what the first window holds at worst. */
const MAX_WINDOW_BYTES = WINDOW * MAX_STORE_BYTES;

export class PageStore {
  /** Contents already stored (or queued): a change makes a new entry, which is stored again. */
  private readonly stored = new WeakSet<NodeData>();
  /**
   * The run of each listing's positions already seen to (by the listing's
   * identity: a new listing starts over), so that reading a window's files
   * one by one does not walk the same window again for each. A file not yet
   * in the cache ends the run, to be tried again on a later read.
   */
  private readonly seen = new WeakMap<readonly string[], { from: number; to: number }>();
  /** Contents stored again after the kernel was found to have lost them (lostByKernel), and when. */
  private readonly restored = new WeakMap<NodeData, number>();
  /** Listings whose files the kernel lost again after they were stored again, and when: left to READ for a while. */
  private readonly lossy = new WeakMap<readonly string[], number>();
  /**
   * Files one read stores ahead now: doubled each time a program reads the
   * file just past a window (it read the whole window), back to WINDOW when
   * one reads elsewhere in a listing it had been reading.
   */
  private window = WINDOW;

  constructor(
    private readonly ctx: VfsContext,
    private readonly tree: WatchedTree,
    private readonly notifier: KernelNotifier,
  ) {}

  /**
   * A program reads `path` from its start: store the files listed after it.
   * Those whose data is not in memory (the listing's read-ahead stopped at
   * its budget, or their data was dropped for room, with the listing
   * itself at times) are read from ZooKeeper first, with one request, and
   * stored when they arrive: a walk over more than the cache holds then
   * still costs about one READ per window, not one per file.
   */
  readAhead(path: string): void {
    const lost = this.lostByKernel(path);
    const first = this.storeAhead(path, lost);
    if (first !== undefined && first.length === 0) return;
    void this.fetchAhead(path, first).catch(() => {});
  }

  /**
   * Whether the kernel asks to read `path` although its content was stored
   * into its page cache, with nothing on its way: the kernel dropped it
   * (memory pressure reclaims pages, and forgets whole files). The files
   * stored after it, at about the same time, are likely gone too, and the
   * run of stores seen to says nothing about them any more. Measured
   * before: once the pages of a walked tree were dropped, every later walk
   * cost one READ per file. Where what is stored again is lost again
   * within seconds (a kernel that drops pages as fast as they come), that
   * listing is left to READ for a minute, so stores cannot go on costing
   * more than the reads they save.
   */
  private lostByKernel(path: string): boolean {
    const node = this.tree.data.peek(toZnode(this.ctx.root, path));
    if (!node || !this.stored.has(node) || this.notifier.pending(path)) return false;
    const names = this.tree.children.peek(toZnode(this.ctx.root, parentPath(path)));
    if (!names || Date.now() - (this.lossy.get(names) ?? Number.NEGATIVE_INFINITY) < LOSSY_MS) return false;
    const restoredAt = this.restored.get(node);
    if (restoredAt !== undefined && Date.now() - restoredAt < LOST_AGAIN_MS) {
      this.lossy.set(names, Date.now());
      return false;
    }
    return true;
  }

  /**
   * A program opens `path` for reading. Its data is read for the open; when
   * that is not in memory, neither are the next files' likely (a second walk
   * over more than the cache holds, whose pages the kernel kept, sends no
   * READ to start from): read ahead from here.
   */
  opened(path: string, znode: string): void {
    if (!this.tree.data.peek(znode)) this.readAhead(path);
  }

  /**
   * Reads what the window after `path` lacks (its listing, then its files'
   * data) and stores it. Once only: what is still missing then (dropped
   * again for room, or gone) is left to READ.
   */
  private async fetchAhead(path: string, first: string[] | undefined): Promise<void> {
    let missing = first;
    if (missing === undefined) {
      await this.tree.listing(toZnode(this.ctx.root, parentPath(path)));
      missing = this.storeAhead(path);
    }
    if (!missing?.length) return;
    await this.tree.readDataAhead(missing);
    this.storeAhead(path);
  }

  /**
   * Queues the stores of the window after `path`; returns the files in it
   * whose data is not in memory, or undefined when its directory's listing
   * is not. `again`: the kernel lost what was stored; store the whole
   * window anew. A window that reaches the end of the directory goes on
   * into the next directories listed after it (continueAhead).
   */
  private storeAhead(path: string, again = false): string[] | undefined {
    const parent = parentPath(path);
    const names = this.tree.children.peek(toZnode(this.ctx.root, parent));
    if (!names) return undefined;
    const from = position(names, baseName(path));
    if (names[from] !== baseName(path)) return [];
    const seen = this.seen.get(names);
    if (seen !== undefined && !again) {
      if (from === seen.to + 1) this.window = Math.min(MAX_WINDOW, this.window * 2);
      else if (from < seen.from - 1 || from > seen.to + 1) this.window = WINDOW;
    }
    const last = Math.min(names.length - 1, from + this.window);
    // The window starts inside (or just after) the run seen so far: only what lies past it is new.
    const continues = !again && seen !== undefined && from + 1 >= seen.from && from <= seen.to;
    const start = continues ? seen.to + 1 : from + 1;
    // Files before `start` were seen to already; each one memory holds from there on counts against the window.
    const budget = { files: this.window - (start - 1 - from), bytes: MAX_WINDOW_BYTES };
    let to = start - 1;
    let complete = true;
    const missing: string[] = [];
    let i = start;
    for (; i <= last && budget.bytes > 0; i++) {
      const held = this.storeOne(parent, names[i] as string, again, budget);
      if (complete && held) to = i;
      else complete = false;
      if (held) continue;
      const znode = toZnode(this.ctx.root, zkChild(parent, names[i] as string));
      // Read from ZooKeeper for the first window's worth only: a cache smaller than a wide window would drop them again.
      if (
        missing.length < WINDOW &&
        !isHiddenChild(names[i] as string, parent === '/') &&
        wantsData(this.tree, znode)
      )
        missing.push(znode);
    }
    if (continues) seen.to = to;
    else this.seen.set(names, { from: from + 1, to });
    if (complete && i > names.length - 1 && !again) this.continueAhead(parent, budget);
    return missing;
  }

  /**
   * Goes on storing into the directories listed after `dir` among its
   * siblings, in order, while the window has room: `find | xargs cat`
   * reads the files of one directory after another, and a walk of small
   * directories otherwise costs a READ for each. Only what memory holds,
   * and only files the kernel has been handed already (the program listed
   * them); each directory's run starts at its first file, so that a read
   * there or just past the run goes on from it.
   */
  private continueAhead(dir: string, budget: { files: number; bytes: number }): void {
    if (dir === '/') return;
    const parent = parentPath(dir);
    const siblings = this.tree.children.peek(toZnode(this.ctx.root, parent));
    if (!siblings) return;
    let at = position(siblings, baseName(dir));
    if (siblings[at] !== baseName(dir)) return;
    for (let scanned = 0; budget.files > 0 && budget.bytes > 0 && scanned < CONTINUE_SCAN; scanned++) {
      const name = siblings[++at];
      if (name === undefined) return;
      const next = zkChild(parent, name);
      const names = this.tree.children.peek(toZnode(this.ctx.root, next));
      // A file, or a directory not listed: nothing of it to store.
      if (!names || !this.notifier.knows(next)) continue;
      if (this.seen.has(names)) return;
      let to = -1;
      for (let i = 0; i < names.length && budget.files > 0 && budget.bytes > 0; i++) {
        const name = names[i] as string;
        // The mount's own documents: never handed to the kernel (`next` is never the mount's root).
        if (isHiddenChild(name, false)) {
          to = i;
          continue;
        }
        if (!this.notifier.knows(zkChild(next, name))) break;
        if (!this.storeOne(next, name, false, budget)) break;
        to = i;
      }
      if (to < 0) return;
      this.seen.set(names, { from: 0, to });
      if (to < names.length - 1) return;
    }
  }

  /**
   * Queues the store of file `name` of `parent` if memory holds its data
   * (`again`: also when stored before), counting it against `budget`.
   * False when memory does not hold it.
   */
  private storeOne(
    parent: string,
    name: string,
    again: boolean,
    budget: { files: number; bytes: number },
  ): boolean {
    const sibling = zkChild(parent, name);
    const znode = toZnode(this.ctx.root, sibling);
    const node = this.tree.data.peek(znode);
    if (!node) return false;
    budget.files--;
    if (node.data.length === 0 || node.data.length > MAX_STORE_BYTES) return true;
    budget.bytes -= node.data.length;
    if (this.stored.has(node)) {
      if (!again || this.notifier.pending(sibling)) return true;
      this.restored.set(node, Date.now());
    }
    this.stored.add(node);
    this.notifier.store(sibling, (id) => {
      if (!isCachedFile(this.ctx, this.tree, sibling, znode, node)) return undefined;
      if (!this.notifier.holdsAt(id, node.data.length)) return undefined;
      this.tree.storedForKernel(node);
      return storeData(id, node.data);
    });
    return true;
  }
}
