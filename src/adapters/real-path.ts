/**
 * Volume directories as the kernel's mount table shows them. mount(2) follows
 * symbolic links, so a volume mounted at /var/run/v shows up at /run/v: a
 * directory kept in the state or compared with /proc/self/mountinfo must be
 * the real path, or the mount looks gone (and its disks free) right away.
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
  const absolute = dir.startsWith('/') ? dir : `${process.cwd()}/${dir}`;
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
