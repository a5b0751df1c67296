/**
 * The tree the zkfs bench reads: DIRS directories of FILES_PER_DIR files,
 * 200–600 bytes each. Shared by the bench and the stub filesystem that
 * serves the same tree from memory (fuse-stub.ts).
 */
export const DIRS = 100;
export const FILES_PER_DIR = 99;

export function fileContent(d: number, f: number): Buffer {
  const n = d * FILES_PER_DIR + f;
  return Buffer.from(`key_${n}=${'v'.repeat(200 + ((n * 37) % 400))}\n`);
}

export const names = {
  dir: (d: number) => `d${String(d).padStart(2, '0')}`,
  file: (f: number) => `f${String(f).padStart(2, '0')}`,
};
