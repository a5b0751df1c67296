/**
 * `npm run bench`: runs each benchmark module in order. A benchmark is a file
 * in this directory exporting `bench(): Promise<void>` that prints its results
 * as ratios to a baseline measured in the same run.
 */
const benches: [string, () => Promise<{ bench: () => Promise<void> }>][] = [
  ['plugin', () => import('./plugin.js')],
  ['zkfs', () => import('./zkfs.js')],
];

const only = process.argv.slice(2);
for (const [name, load] of benches) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`== ${name}`);
  await (await load()).bench();
}
