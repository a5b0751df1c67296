/**
 * The whole encrypted-disk cycle through the project's own CLI, inside
 * User-Mode Linux (this host's kernel has no device-mapper):
 * initialize-disk with LUKS (which runs mkfs inside the container) →
 * luks-open → mount → write → read back → umount → luks-close, then open
 * again to prove the data persisted. Afterwards the host reads the same image
 * through a loop device: initialised, encrypted, and the key still opens it.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { InitializeDiskResult } from '../../src/commands/initialize-disk.js';
import type { LuksOpenResult } from '../../src/commands/luks-open.js';
import type { MatchQueryResult } from '../../src/commands/match-query.js';
import type { DiskReport } from '../../src/core/disk-state.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { cli } from '../fixtures/cli.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { keyDir, TEST_ENV } from '../fixtures/simple-disks.js';
import { runInUml, type UmlResult } from '../fixtures/uml.js';

// Each step leaves <name>.out, <name>.err and <name>.rc in $RESULTS. A cryptsetup wrapper
// first in PATH records the argv of every call (arguments end in \037, calls in \036).
const SCRIPT = String.raw`
S="$NODE $REPO/bin/simplectl"
step() { name=$1; shift; "$@" > "$RESULTS/$name.out" 2> "$RESULTS/$name.err"; echo $? > "$RESULTS/$name.rc"; }
REAL_CRYPTSETUP=$(command -v cryptsetup)
mkdir -p /run/argv-shim
cat > /run/argv-shim/cryptsetup <<SHIM
#!/bin/sh
printf '%s\037' "\$@" >> "$RESULTS/cryptsetup.argv"
printf '\036' >> "$RESULTS/cryptsetup.argv"
exec $REAL_CRYPTSETUP "\$@"
SHIM
chmod 755 /run/argv-shim/cryptsetup
export PATH="/run/argv-shim:$PATH"
Q=label.secure_encryption-key.k_filesystem.ext4_encryption-cipher.aes-xts-plain64_encryption-key-size.512_encryption-hash.sha256
step dry $S --json initialize-disk /dev/ubda $Q --dry-run
step init $S --json initialize-disk /dev/ubda $Q --yes
step scan $S --json scan-disks --include ubda
step match $S --json match-query label.secure_encryption-key.k --include ubda
printf 'wrong horse\n' | step wrong $S luks-open /dev/ubda
printf 'correct horse\n' | step open $S --json luks-open /dev/ubda
M=$(ls /dev/mapper | grep '^simple-')
mkdir -p /run/mnt
step mount mount "/dev/mapper/$M" /run/mnt
echo 'written inside UML' > /run/mnt/hello.txt && sync
step read cat /run/mnt/hello.txt
step busy $S luks-close "$M"
step umount umount /run/mnt
# Volume state on read-only filesystems, one clean and one a crash left a lock in: no mount can
# take their lock either, so a close beside them goes on.
mkdir -p /run/rostate /run/rocrashed
echo '{}' > /run/rostate/volumes.json
sh -c : & DEAD=$!; wait $DEAD
printf '{"pid":%d,"startTime":"1","purpose":"mount label.secure at /run/x","since":"then"}' "$DEAD" > /run/rocrashed/assign.lock
step robind sh -c 'for d in /run/rostate /run/rocrashed; do mount --bind $d $d && mount -o remount,bind,ro $d || exit 1; done'
step close $S luks-close "$M" --state-dir /run/rostate
ls /dev/mapper > "$RESULTS/mapper-after-close.txt"
step reopen $S luks-open /dev/ubda --key-name k
step remount mount -o ro "/dev/mapper/$M" /run/mnt
step reread cat /run/mnt/hello.txt
umount /run/mnt
# State kept on a read-only filesystem: no mount can take its lock either, so the close goes on.
step reclose $S luks-close "/dev/mapper/$M" --state-dir /run/rocrashed
step keyfile $S luks-open /dev/ubda --key-file "$SIMPLECTL_KEY_DIR/k"
# A volume mount under way holds the state lock (a process stands in for one here): luks-close
# waits for it before it looks, and closes once it ends.
mkdir -p /run/locked
sleep 600 & HOLDER=$!
printf '{"pid":%d,"startTime":"%s","purpose":"mount label.secure at /run/x","since":"now"}' \
  "$HOLDER" "$(cut -d' ' -f22 /proc/$HOLDER/stat)" > /run/locked/assign.lock
step keyfile-close $S luks-close "$M" --state-dir /run/locked & CLOSER=$!
for i in $(seq 120); do grep -q 'waiting for the lock' "$RESULTS/keyfile-close.err" 2>/dev/null && break; sleep 0.25; done
sleep 1
ls /dev/mapper > "$RESULTS/mapper-while-locked.txt"
kill $HOLDER; wait $CLOSER
ls /dev/mapper > "$RESULTS/mapper-after-locked.txt"
# Two volumes sharing the encrypted disk (exclusive.false): one mapping, opened by the first.
V="--state-dir /run/volumes"
A=label.secure_encryption-key.k_exclusive.false
B=label.secure_encryption-key.k_exclusive.false_basename.b-
step va-mount $S mount $A /run/va $V --include ubda
step vb-mount $S mount $B /run/vb $V --include ubda
step va-umount $S umount /run/va $V
ls /dev/mapper > "$RESULTS/mapper-after-va.txt"
step vb-read cat /run/vb/b-0/hello.txt
step vb-umount $S umount /run/vb $V
ls /dev/mapper > "$RESULTS/mapper-after-vb.txt"
# A mapping by the disk's name left on another device (as when the disk went away while its
# filesystem was in use, and came back): never mounted as the disk.
mkfs.ext4 -q /dev/ubdb && mkdir -p /run/decoy && mount /dev/ubdb /run/decoy
echo 'another device' > /run/decoy/decoy.txt && umount /run/decoy
dmsetup create "$M" --table "0 $(blockdev --getsz /dev/ubdb) linear /dev/ubdb 0" && dmsetup mknodes "$M"
C=label.secure_encryption-key.k_exclusive.false_basename.s-
step stale-mount $S mount $C /run/vs $V --include ubda
grep -c ' /run/vs' /proc/mounts > "$RESULTS/stale-mounts.txt"
ls /dev/mapper > "$RESULTS/mapper-after-stale.txt"
dmsetup remove "$M"
step fresh-mount $S mount $C /run/vs $V --include ubda
step fresh-read cat /run/vs/s-0/hello.txt
step fresh-umount $S umount /run/vs $V
# A mapping of the disk nobody reads through (a mount opened it and died before it saved that, or
# luks-open left it): the next volume to mount the disk takes it over, and its umount closes it.
printf 'correct horse\n' | step left-open $S luks-open /dev/ubda
D=label.secure_encryption-key.k_exclusive.false_basename.d-
step left-mount $S mount $D /run/vd $V --include ubda
step left-umount $S umount /run/vd $V
ls /dev/mapper > "$RESULTS/mapper-after-left.txt"
# A disk on a volume's root the state does not record (the mount died before it saved it):
# umount unmounts it, and closes the mapping it read through.
step untracked-mount $S mount $D /run/vd $V --include ubda
$NODE -e 'const fs = require("fs"); const f = "/run/volumes/volumes.json"; const s = JSON.parse(fs.readFileSync(f));
for (const v of Object.values(s.volumes)) if (v.mount && v.mount.dir === "/run/vd") v.mount.disks = {};
fs.writeFileSync(f, JSON.stringify(s));'
step untracked-umount $S umount /run/vd $V
grep -c ' /run/vd' /proc/mounts > "$RESULTS/untracked-mounts.txt"
ls /dev/mapper > "$RESULTS/mapper-after-untracked.txt"
# The volume that opened a shared mapping unmounted by hand (umount -R, not simplectl): the next
# mount hands the mapping to a volume still reading through it, and the last umount closes it.
step ha-mount $S mount $A /run/va $V --include ubda
step hb-mount $S mount $B /run/vb $V --include ubda
umount -R /run/va
step hd-mount $S mount $D /run/vd $V --include ubda
step hb-umount $S umount /run/vb $V
step hd-umount $S umount /run/vd $V
ls /dev/mapper > "$RESULTS/mapper-after-by-hand.txt"
# A disk unplugged while two volumes share its mapping: the dynamic-mounts watcher of the volume
# that opened it takes its disk away and hands the mapping to the other volume, whose umount
# closes it. Only then can the loop device finish detaching.
modprobe loop
L=$(losetup --find --show /dev/ubdc); LN=$(basename "$L")
step lo-init $S initialize-disk "$L" $Q --yes
WA=label.secure_encryption-key.k_exclusive.false_basename.w-_dynamic-mounts
WB=label.secure_encryption-key.k_exclusive.false_basename.x-
step wa-mount $S mount $WA /run/wa $V --include "$LN"
step wb-mount $S mount $WB /run/wb $V --include "$LN"
losetup -d "$L"
for i in $(seq 120); do grep -q ' /run/wa/' /proc/mounts || break; sleep 0.25; done
grep -c ' /run/wa/' /proc/mounts > "$RESULTS/watch-left-mounts.txt"
ls /dev/mapper > "$RESULTS/mapper-after-watch.txt"
step wb-umount $S umount /run/wb $V
ls /dev/mapper > "$RESULTS/mapper-after-wb.txt"
for i in $(seq 40); do [ -e "/sys/block/$LN/loop/backing_file" ] || break; sleep 0.25; done
cat "/sys/block/$LN/loop/backing_file" > "$RESULTS/loop-after-wb.txt" 2>&1
step wa-umount $S umount /run/wa $V
# LUKS settings cryptsetup refuses (aes-xts takes no 128-bit key) are refused before the disk is
# touched: the disk still holds what it held.
md5sum < /dev/ubdc > "$RESULTS/badkey-before.txt"
step badkey $S initialize-disk /dev/ubdc label.bad_encryption-key.k_encryption-key-size.128 --force --yes
md5sum < /dev/ubdc > "$RESULTS/badkey-after.txt"
`;

describe.skipIf(missing({ root: true, loop: true }))('LUKS cycle inside User-Mode Linux', () => {
  let uml: UmlResult;
  let image: string;
  let decoy: string;
  let unplugged: string;
  let keys: string;

  const rc = (name: string) => uml.read(`${name}.rc`).trim();
  const json = <T>(name: string) => JSON.parse(uml.read(`${name}.out`)) as T;
  const why = (name: string) =>
    `${name}: ${uml.read(`${name}.err`)}\n--- output ---\n${uml.output}\n--- console ---\n${uml.console.slice(-3000)}`;

  beforeAll(async () => {
    image = join(scratchDir('uml-disk'), 'disk.img');
    const fd = openSync(image, 'w');
    ftruncateSync(fd, 128 * 1024 * 1024);
    closeSync(fd);
    decoy = join(scratchDir('uml-decoy'), 'decoy.img');
    const decoyFd = openSync(decoy, 'w');
    ftruncateSync(decoyFd, 16 * 1024 * 1024);
    closeSync(decoyFd);
    unplugged = join(scratchDir('uml-unplugged'), 'unplugged.img');
    const unpluggedFd = openSync(unplugged, 'w');
    ftruncateSync(unpluggedFd, 64 * 1024 * 1024);
    closeSync(unpluggedFd);
    keys = keyDir({ k: 'correct horse' });
    uml = await runInUml({
      script: SCRIPT,
      disks: [image, decoy, unplugged],
      env: { ...TEST_ENV, SIMPLECTL_KEY_DIR: keys, NO_COLOR: '1' },
      // Well over the 3.5 minutes the script takes on two busy cores.
      timeoutMs: 480_000,
    });
  }, 500_000);

  it('boots, runs the script to its end', () => {
    expect(uml.exitCode, uml.console.slice(-3000)).toBe(0);
  });

  it('initialize-disk formats LUKS and creates ext4 inside it', () => {
    expect(rc('init'), why('init')).toBe('0');
    expect(json<InitializeDiskResult>('init')).toMatchObject({
      device: '/dev/ubda',
      label: 'secure',
      encrypted: true,
      filesystem: 'ext4',
      dataPartition: { device: '/dev/ubda2' },
      disk: { state: 'initialised', encrypted: true, filesystem: 'ext4', hostname: 'uml-guest' },
    });
    const steps = json<InitializeDiskResult>('init')
      .steps.flatMap((s) => s.commands)
      .join('\n');
    expect(steps).not.toContain('correct horse');
    expect(uml.read('init.err')).not.toContain('correct horse');
  });

  it('--dry-run lists exactly the cryptsetup command line the real run executes', () => {
    expect(rc('dry'), why('dry')).toBe('0');
    const luksFormatLine = (name: string) =>
      json<InitializeDiskResult>(name)
        .steps.flatMap((s) => s.commands)
        .filter((c) => c.startsWith('cryptsetup luksFormat'));
    const executed = uml
      .read('cryptsetup.argv')
      .split('\u001e')
      .map((c) => c.split('\u001f').slice(0, -1))
      .filter((c) => c[0] === 'luksFormat' && c.at(-1) === '/dev/ubda2')
      .map((c) => `cryptsetup ${c.join(' ')}`);
    expect(executed).toEqual([
      'cryptsetup luksFormat --batch-mode --key-file - --cipher aes-xts-plain64 --key-size 512 --hash sha256 ' +
        '--pbkdf pbkdf2 --pbkdf-force-iterations 1000 /dev/ubda2',
    ]);
    expect(luksFormatLine('dry')).toEqual(executed);
    expect(luksFormatLine('init')).toEqual(executed);
  });

  it('scan-disks and match-query see the encrypted disk, and the key opens it', () => {
    expect(json<DiskReport[]>('scan')[0]).toMatchObject({
      state: 'initialised',
      label: 'secure',
      encrypted: true,
    });
    expect(rc('match'), why('match')).toBe('0');
    expect(json<MatchQueryResult>('match').chosen.map((d) => d.device)).toEqual(['/dev/ubda']);
  });

  it('luks-open refuses a wrong passphrase', () => {
    expect(rc('wrong')).toBe('1');
    expect(uml.read('wrong.err')).toContain('the passphrase does not open /dev/ubda2');
  });

  it('opens, mounts, writes, reads back, and closes only once unmounted, beside read-only volume state too', () => {
    expect(rc('open'), why('open')).toBe('0');
    const opened = json<LuksOpenResult>('open');
    expect(opened.dataPartition).toBe('/dev/ubda2');
    expect(opened.mapper).toMatch(/^\/dev\/mapper\/simple-[0-9a-f-]{36}$/);
    expect(rc('mount'), why('mount')).toBe('0');
    expect(uml.read('read.out')).toBe('written inside UML\n');
    expect(rc('busy')).toBe('1');
    expect(uml.read('busy.err')).toMatch(/is mounted at \/run\/mnt; unmount it first/);
    expect(rc('umount'), why('umount')).toBe('0');
    expect(rc('robind'), why('robind')).toBe('0');
    expect(rc('close'), why('close')).toBe('0');
    expect(uml.read('close.err'), why('close')).toMatch(
      /cannot take the lock \/run\/rostate\/assign\.lock: EROFS.*; closing without it/,
    );
    expect(uml.read('mapper-after-close.txt').trim()).toBe('control');
  });

  it('the data persists: reopened with the key file, the file is still there', () => {
    expect(rc('reopen'), why('reopen')).toBe('0');
    expect(rc('remount'), why('remount')).toBe('0');
    expect(uml.read('reread.out')).toBe('written inside UML\n');
    expect(rc('reclose'), why('reclose')).toBe('0');
    // Breaking the dead holder's lock needs a write too.
    expect(uml.read('reclose.err'), why('reclose')).toMatch(
      /cannot take the lock \/run\/rocrashed\/assign\.lock: EROFS.*assign\.lock\.break.*; closing without it/,
    );
  });

  it('closes the mapping two volumes shared once the second is unmounted, whichever opened it', () => {
    for (const step of ['va-mount', 'vb-mount', 'va-umount']) expect(rc(step), why(step)).toBe('0');
    // The first volume's umount leaves the mapping to the second, which still reads through it.
    expect(uml.read('mapper-after-va.txt')).toMatch(/^simple-/m);
    expect(uml.read('vb-read.out')).toBe('written inside UML\n');
    expect(rc('vb-umount'), why('vb-umount')).toBe('0');
    expect(uml.read('mapper-after-vb.txt').trim()).toBe('control');
  });

  it("refuses a mapping by the disk's name that sits on another device, and mounts once it is gone", () => {
    expect(rc('stale-mount'), why('stale-mount')).not.toBe('0');
    expect(uml.read('stale-mount.err')).toMatch(
      /\/dev\/mapper\/simple-\S+ is already open, but not on \/dev\/ubda\d: it is not this disk's mapping; if it is stale, close it \(simplectl luks-close simple-\S+\) and mount again/,
    );
    // Nothing was mounted (neither the volume's root nor the other device's filesystem), and the
    // mapping is left as it was.
    expect(uml.read('stale-mounts.txt').trim()).toBe('0');
    expect(uml.read('mapper-after-stale.txt')).toMatch(/^simple-/m);
    for (const step of ['fresh-mount', 'fresh-read', 'fresh-umount']) expect(rc(step), why(step)).toBe('0');
    expect(uml.read('fresh-read.out')).toBe('written inside UML\n');
  });

  it('closes a mapping nobody read through once the volume that took it over is unmounted, one a disk no longer recorded read through, and one whose opener was unmounted by hand', () => {
    for (const step of ['left-open', 'left-mount', 'left-umount']) expect(rc(step), why(step)).toBe('0');
    expect(uml.read('mapper-after-left.txt').trim()).toBe('control'); // was left open for good
    for (const step of ['untracked-mount', 'untracked-umount']) expect(rc(step), why(step)).toBe('0');
    expect(uml.read('untracked-mounts.txt').trim()).toBe('0');
    expect(uml.read('mapper-after-untracked.txt').trim()).toBe('control');
    for (const step of ['ha-mount', 'hb-mount', 'hd-mount', 'hb-umount', 'hd-umount']) {
      expect(rc(step), why(step)).toBe('0');
    }
    expect(uml.read('mapper-after-by-hand.txt').trim()).toBe('control'); // was left open for good
  });

  it("hands a shared mapping over when the watcher takes away the disk of the volume that opened it, so the other volume's umount closes it", () => {
    for (const step of ['lo-init', 'wa-mount', 'wb-mount']) expect(rc(step), why(step)).toBe('0');
    expect(uml.read('watch-left-mounts.txt').trim(), uml.read('wa-mount.err')).toBe('0');
    expect(uml.read('mapper-after-watch.txt')).toMatch(/^simple-/m); // the other volume reads through it
    expect(rc('wb-umount'), why('wb-umount')).toBe('0');
    expect(uml.read('mapper-after-wb.txt').trim()).toBe('control');
    expect(uml.read('loop-after-wb.txt')).toMatch(/No such file/); // the unplugged device is gone
    expect(rc('wa-umount'), why('wa-umount')).toBe('0');
  });

  it('refuses LUKS settings cryptsetup does not take before it touches the disk', () => {
    expect(rc('badkey')).toBe('1');
    expect(uml.read('badkey.err')).toMatch(
      /cryptsetup refuses the default cipher, key size 128 bits: .+\. Nothing was changed\./,
    );
    expect(uml.read('badkey-after.txt')).toBe(uml.read('badkey-before.txt'));
  });

  it('opens with --key-file too; its close waits for a volume mount holding the state lock; cryptsetup only ever got the passphrase on stdin', () => {
    expect(rc('keyfile'), why('keyfile')).toBe('0');
    expect(rc('keyfile-close'), why('keyfile-close')).toBe('0');
    expect(uml.read('keyfile-close.err')).toMatch(
      /waiting for the lock \/run\/locked\/assign\.lock, held by pid \d+ \(mount label\.secure at \/run\/x\)/,
    );
    expect(uml.read('mapper-while-locked.txt')).toMatch(/^simple-/m);
    expect(uml.read('mapper-after-locked.txt').trim()).toBe('control');
    const calls = uml
      .read('cryptsetup.argv')
      .split('\u001e')
      .filter((c) => c !== '')
      .map((c) => c.split('\u001f').slice(0, -1));
    for (const call of calls) expect(call.join(' ')).not.toMatch(/correct horse|wrong horse/);
    const format = calls.filter((c) => c[0] === 'luksFormat' && c.includes('/dev/ubda2'));
    expect(format).toHaveLength(1);
    expect(format[0]).toEqual(expect.arrayContaining(['--key-file', '-', '/dev/ubda2']));
    const opens = calls.filter((c) => c[0] === 'open').map((c) => c.join(' '));
    // initialize-disk (mkfs inside), the wrong and right passphrase, --key-name, --key-file,
    // the two volumes' mounts (the second finds the mapping open, and reads through it), and the
    // third volume's two (the first finds another device's mapping by the disk's name), then the
    // mapping left open, the fourth volume's two (the first finds that one open), and the first,
    // second and fourth volumes' mounts again (the last two find the mapping open).
    expect(opens.filter((c) => /^open --type luks --key-file - \/dev\/ubda2 simple-/.test(c))).toHaveLength(
      15,
    );
    expect(opens).toContain('open --test-passphrase --key-file - /dev/ubda2');
  });

  it('the host reads the same image as an initialised, encrypted disk the key opens', async () => {
    const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    onCleanup(`loop device ${device}`, () => {
      execFileSync('partx', ['-d', device], { stdio: 'ignore' });
      execFileSync('losetup', ['-d', device]);
    });
    const name = device.replace('/dev/', '');
    const scan = await cli('simplectl', ['--json', 'scan-disks', '--include', name]);
    expect(JSON.parse(scan.stdout)[0]).toMatchObject({
      state: 'initialised',
      label: 'secure',
      hostname: 'uml-guest',
      encrypted: true,
      filesystem: 'ext4',
      warnings: [],
    });
    const match = await cli(
      'simplectl',
      ['--json', 'match-query', 'label.secure_encryption-key.k', '--include', name],
      {
        env: { SIMPLECTL_KEY_DIR: keys },
      },
    );
    expect((JSON.parse(match.stdout) as MatchQueryResult).chosen.map((d) => d.device)).toEqual([device]);
  });
});
