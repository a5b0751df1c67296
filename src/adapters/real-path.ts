/**
 * Volume directories and mount points as the kernel's mount table shows them.
 * mount(2) follows symbolic links, so a volume mounted at /var/run/v shows up
 * at /run/v: a directory kept in the state or compared with
 * /proc/self/mountinfo must be the real path, or the mount looks gone (and
 * its disks free, or its daemon done) right away.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * `dir` absolute, with every symbolic link in the part that exists resolved
 * (realpath, so `link/..` is the parent of the link's target, as for the
 * kernel), and the part that does not exist yet appended as given. A trailing
 * slash is dropped. Never throws: a path it cannot resolve comes back as
 * path.resolve gives it, for the caller's own checks to report.
 */
export async function canonicalDir(dir: string): Promise<string> {
  // Without its trailing slash: realpath("DIR/") asks the filesystem mounted at DIR, and waits forever
  // on a FUSE daemon that hangs, where "DIR" is read from the parent's directory alone.
  const absolute = (dir.startsWith('/') ? dir : `${process.cwd()}/${dir}`).replace(/(.)\/+$/, '$1');
  const missing: string[] = [];
  for (let existing = absolute; ; existing = dirname(existing)) {
    try {
      const real = await realpath(existing);
      return missing.length === 0 ? real : join(real, ...missing.reverse());
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(existing) === existing) {
        return resolve(dir);
      }
      missing.push(basename(existing));
    }
  }
}

/**
 * A mount point given on the command line: `dir` its real path (canonicalDir),
 * the one the mount table, run records and log names use, and `shown` what
 * the user gave, made absolute, followed by the real path when a symbolic
 * link makes them differ, for messages.
 */
export async function realMountPoint(given: string): Promise<{ dir: string; shown: string }> {
  const dir = await canonicalDir(given);
  const absolute = resolve(given);
  return { dir, shown: absolute === dir ? dir : `${absolute} (${dir})` };
}
