/**
 * Builds what `docker plugin create NAME DIR` needs, offline, from the package
 * that is running: DIR/config.json and DIR/rootfs holding this package with its
 * production dependencies, the node binary, the system tools the driver calls,
 * and every shared library they load (found with ldd).
 */
import { constants } from 'node:fs';
import { access, chmod, cp, mkdir, readdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join, relative } from 'node:path';
import { run } from '../adapters/exec.js';
import { OperationError, UsageError } from '../core/errors.js';
import {
  MANAGED_INSTALL_DIR,
  MANAGED_NODE_PATH,
  MANAGED_PATH,
  MANAGED_PROPAGATED_MOUNT,
  MANAGED_STATE_DIR,
  managedPluginConfig,
} from '../core/managed-plugin.js';
import type { PluginDriver } from '../core/plugin-paths.js';
import type { CommandContext } from './context.js';

/** Tools each driver's handlers run (through adapters/exec.ts or a spawned daemon). */
const TOOLS: Record<PluginDriver, readonly string[]> = {
  zookeeper: ['sh', 'env', 'mount', 'umount', 'fusermount', 'fusermount3'],
  simple: [
    'sh',
    'env',
    'mount',
    'umount',
    'blkid',
    'partx',
    'partprobe',
    'sgdisk',
    'wipefs',
    'cryptsetup',
    'udevadm',
    'modprobe',
    'mkfs',
    'mkfs.ext4',
    'mkfs.xfs',
    'mkfs.btrfs',
  ],
};

/** Package files copied besides the production dependencies. */
const PACKAGE_FILES = ['package.json', 'bin', 'dist', 'man'];

export interface BuildPluginRootfsOptions {
  tool: 'simplectl' | 'zkfsctl';
  driver: PluginDriver;
  /** simple: the devices the plugin may consider, as `serve-plugin --include`. */
  include?: readonly string[];
  /** Output directory; must be absent or empty. */
  dir: string;
  /** Package to copy; defaults to the one running. */
  packageRoot?: string;
  /** Node binary to copy; defaults to the one running. */
  nodePath?: string;
  /** Search path for the tools; defaults to PATH. */
  searchPath?: string;
}

export interface BuildPluginRootfsResult {
  dir: string;
  configFile: string;
  rootfs: string;
  /** npm packages copied (production dependencies). */
  packages: string[];
  /** Host files copied into the rootfs (tools and libraries), by absolute path. */
  hostFiles: string[];
  /** Tools not found on this host; the driver fails where it needs them. */
  missingTools: string[];
  /** Next step for the operator. */
  createCommand: string;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function findTool(name: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Shared libraries (and the loader) `file` needs; empty for static binaries and scripts. */
async function sharedLibraries(file: string, ctx: CommandContext): Promise<string[]> {
  const result = await run('ldd', [file], {
    okExitCodes: [1],
    logger: ctx.log,
    purpose: `listing libraries of ${file}`,
  });
  if (result.exitCode !== 0) return [];
  const libs: string[] = [];
  for (const line of result.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** Directory of an installed dependency as node would resolve it from `fromDir`. */
async function resolvePackage(name: string, fromDir: string, root: string): Promise<string | undefined> {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, 'node_modules', name);
    if (await exists(join(candidate, 'package.json'))) return candidate;
    if (dir === root || relative(root, dir).startsWith('..')) return undefined;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

interface PackageJson {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** Every production dependency directory of the package at `root`, transitively. */
async function productionPackages(root: string): Promise<string[]> {
  const found = new Set<string>();
  const queue: { name: string; from: string; optional: boolean }[] = [];
  const enqueue = async (dir: string) => {
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
    for (const name of Object.keys(pkg.dependencies ?? {})) queue.push({ name, from: dir, optional: false });
    for (const name of Object.keys(pkg.optionalDependencies ?? {}))
      queue.push({ name, from: dir, optional: true });
  };
  await enqueue(root);
  while (queue.length > 0) {
    const next = queue.shift()!;
    const dir = await resolvePackage(next.name, next.from, root);
    if (!dir) {
      if (next.optional) continue;
      throw new OperationError(
        `dependency ${next.name} is not installed under ${root}; run npm install first`,
      );
    }
    if (found.has(dir)) continue;
    found.add(dir);
    await enqueue(dir);
  }
  return [...found].sort();
}

/** Native files inside copied packages, whose libraries must come along too. */
async function nativeFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /\.(node|so(\.\d+)*)$/.test(entry.name))
      out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

export async function buildPluginRootfs(
  options: BuildPluginRootfsOptions,
  ctx: CommandContext,
): Promise<BuildPluginRootfsResult> {
  const packageRoot = options.packageRoot ?? new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
  const nodePath = await realpath(options.nodePath ?? process.execPath);
  const searchPath = options.searchPath ?? process.env.PATH ?? MANAGED_PATH;
  const dir = options.dir;
  if ((await exists(dir)) && (await readdir(dir)).length > 0) {
    throw new UsageError(`${dir} is not empty; give a new or empty directory`);
  }
  const rootfs = join(dir, 'rootfs');
  const install = join(rootfs, MANAGED_INSTALL_DIR);
  await mkdir(install, { recursive: true, mode: 0o755 });

  ctx.progress('copying the package');
  for (const name of PACKAGE_FILES) {
    const source = join(packageRoot, name);
    if (await exists(source)) await cp(source, join(install, name), { recursive: true });
    else if (name !== 'man')
      throw new OperationError(`${source} is missing; build the package first (npm run build)`);
  }
  const packages = await productionPackages(packageRoot);
  for (const pkg of packages) {
    await cp(pkg, join(install, relative(packageRoot, pkg)), { recursive: true, verbatimSymlinks: true });
  }

  ctx.progress('copying node, tools and libraries');
  const hostFiles = new Set<string>();
  const missingTools: string[] = [];
  const binaries: string[] = [nodePath];
  for (const tool of TOOLS[options.driver]) {
    const path = await findTool(tool, searchPath);
    if (path) binaries.push(path);
    else missingTools.push(tool);
  }
  const copyHostFile = async (path: string) => {
    if (hostFiles.has(path)) return;
    hostFiles.add(path);
    const target = join(rootfs, path);
    await mkdir(dirname(target), { recursive: true });
    // Symlinks (mkfs.ext4 -> mke2fs, lib*.so.6 -> lib*.so.6.0.x) become plain copies under the name used.
    await cp(path, target, { dereference: true });
  };
  // Node goes to one fixed place (it is large): the entrypoint and `#!/usr/bin/env node` both find it there.
  await mkdir(join(rootfs, 'usr/local/bin'), { recursive: true });
  await cp(nodePath, join(rootfs, MANAGED_NODE_PATH));
  hostFiles.add(MANAGED_NODE_PATH);
  for (const bin of binaries.slice(1)) await copyHostFile(bin);
  for (const file of [...binaries, ...(await nativeFiles(join(install, 'node_modules')).catch(() => []))]) {
    for (const lib of await sharedLibraries(file, ctx)) await copyHostFile(lib);
  }

  for (const d of [
    'dev',
    'proc',
    'sys',
    'etc',
    'run/docker/plugins',
    MANAGED_PROPAGATED_MOUNT,
    MANAGED_STATE_DIR,
  ]) {
    await mkdir(join(rootfs, d), { recursive: true, mode: 0o755 });
  }
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\n');
  await writeFile(join(rootfs, 'etc/machine-id'), '');

  const configFile = join(dir, 'config.json');
  const config = managedPluginConfig({
    tool: options.tool,
    driver: options.driver,
    ...(options.include ? { include: options.include } : {}),
  });
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  if (missingTools.length > 0) {
    ctx.log.warn(`not found on this host, so not in the plugin: ${missingTools.join(', ')}`);
  }
  return {
    dir,
    configFile,
    rootfs,
    packages: packages.map((p) => relative(packageRoot, p)),
    hostFiles: [...hostFiles].sort(),
    missingTools,
    createCommand: `docker plugin create volkit/${options.driver} ${dir}`,
  };
}
