/**
 * The `__symlinks__` node under the mount root (shared/reference.md §3): one
 * `link=target` line per symbolic link, LF-separated, no trailing LF; `link`
 * is the link's path inside the mount ("/a/b").
 *
 * Compatibility with the old tool, and its bug fixed:
 * - Reading splits each line on its FIRST `=` only, so targets may contain
 *   `=` (the old code split on every `=`, corrupting such links).
 * - Writing escapes, in the link part only, `%` as `%25`, `=` as `%3D`, LF as
 *   `%0A` and CR as `%0D`. Names without those characters (nearly all) are
 *   written exactly as before, so old readers see the same lines; a name
 *   with them reaches an old reader as a harmless literal like `a%3Db`.
 *   Reading undoes exactly these four escapes and leaves any other `%` alone.
 * - Targets are written raw. A target containing LF or CR cannot be stored in
 *   a line and is refused (EINVAL); an empty target is refused as by Linux.
 * - Blank lines and a trailing LF or CRLF (hand-edited nodes) are tolerated.
 * (The other two old bugs — no version check on rewrite, `target=target` on
 * rename — are fixed where the node is written: adapters/zkfs/links.ts.)
 */
import { FsError } from './errors.js';
import { isWithin, parentPath } from './paths.js';

/** link path inside the mount → target, in file order. */
export type SymlinkMap = Map<string, string>;

const ESCAPES: Record<string, string> = { '%': '%25', '=': '%3D', '\n': '%0A', '\r': '%0D' };
const UNESCAPES: Record<string, string> = { '%25': '%', '%3D': '=', '%0A': '\n', '%0D': '\r' };

function escapeLink(link: string): string {
  return link.replace(/[%=\n\r]/g, (c) => ESCAPES[c] ?? c);
}

function unescapeLink(link: string): string {
  return link.replace(/%(25|3[dD]|0[aA]|0[dD])/g, (m) => UNESCAPES[m.toUpperCase()] ?? m);
}

export function parseSymlinks(data: Buffer | string | undefined): SymlinkMap {
  const map: SymlinkMap = new Map();
  if (data === undefined) return map;
  const text = typeof data === 'string' ? data : data.toString('utf8');
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    map.set(unescapeLink(line.slice(0, eq)), line.slice(eq + 1));
  }
  return map;
}

export function encodeSymlinks(map: SymlinkMap): Buffer {
  const lines: string[] = [];
  for (const [link, target] of map) lines.push(`${escapeLink(link)}=${target}`);
  return Buffer.from(lines.join('\n'), 'utf8');
}

/** Throws EINVAL for a target this format cannot hold. */
export function checkTarget(target: string): void {
  if (target === '') throw new FsError('EINVAL', 'empty symlink target');
  if (/[\n\r]/.test(target)) throw new FsError('EINVAL', 'symlink targets cannot contain line breaks');
}

/** The names of links directly inside directory `dir` (a mount path). */
export function linksIn(map: SymlinkMap, dir: string): string[] {
  const prefix = dir === '/' ? '/' : `${dir}/`;
  const names: string[] = [];
  for (const link of map.keys()) {
    if (!link.startsWith(prefix)) continue;
    const rest = link.slice(prefix.length);
    if (rest !== '' && !rest.includes('/')) names.push(rest);
  }
  return names;
}

/** True when some link lies at or below `path`. */
export function hasLinksWithin(map: SymlinkMap, path: string): boolean {
  for (const link of map.keys()) if (isWithin(link, path)) return true;
  return false;
}

/**
 * The map without the links below `path`, or undefined when there are none.
 * Made where `path` does not exist yet, they are links of a directory by
 * that name that another client deleted (zkCli's deleteall leaves the table
 * as it was): the new node must not show them again.
 */
export function withoutLinksBelow(map: SymlinkMap, path: string): SymlinkMap | undefined {
  return linksWhere(map, (link) => link === path || !isWithin(link, path));
}

/**
 * The map without the links directly inside any of `dirs`, or undefined
 * when there are none: links of directories that no longer exist, which
 * nothing can reach again.
 */
export function withoutLinksIn(map: SymlinkMap, dirs: ReadonlySet<string>): SymlinkMap | undefined {
  return linksWhere(map, (link) => !dirs.has(parentPath(link)));
}

/** The links `keep` accepts, or undefined when it accepts them all. */
function linksWhere(map: SymlinkMap, keep: (link: string) => boolean): SymlinkMap | undefined {
  const out: SymlinkMap = new Map();
  for (const [link, target] of map) if (keep(link)) out.set(link, target);
  return out.size === map.size ? undefined : out;
}

/**
 * The map after moving everything at or below `from` to `to`: each moved
 * link keeps its own target (the old code wrote `target=target` here).
 * Returns undefined when no link moves.
 */
export function moveLinks(map: SymlinkMap, from: string, to: string): SymlinkMap | undefined {
  let moved = false;
  const out: SymlinkMap = new Map();
  for (const [link, target] of map) {
    if (isWithin(link, from)) {
      out.set(to + link.slice(from.length), target);
      moved = true;
    } else if (!out.has(link)) {
      out.set(link, target);
    }
  }
  return moved ? out : undefined;
}

/**
 * Whether a table read back (`now`) shows what changed from `before` to
 * `after`: each link added or retargeted there, each link removed gone.
 * For a write sent again after its reply was lost, with other links
 * changed by other hosts since.
 */
export function showsLinkChanges(before: SymlinkMap, after: SymlinkMap): (now: Buffer) => boolean {
  return (data) => {
    const now = parseSymlinks(data);
    for (const [link, target] of after) {
      if (before.get(link) !== target && now.get(link) !== target) return false;
    }
    for (const link of before.keys()) if (!after.has(link) && now.has(link)) return false;
    return true;
  };
}
