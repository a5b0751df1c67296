/**
 * The man pages and --help must describe the same commands and options: a
 * flag added to the CLI without a man entry (or the reverse) fails here.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';

interface ManPage {
  global: Set<string>;
  commands: Map<string, Set<string>>;
}

/** Long options named on `.B`/`.BR`/`.BI` lines that follow a `.TP`. */
function optionsIn(lines: string[]): Set<string> {
  const found = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    if (lines[i - 1]!.trim() !== '.TP') continue;
    const plain = lines[i]!.replace(/\\-/g, '-');
    for (const m of plain.matchAll(/--([a-z][a-z0-9-]*)/g)) found.add(`--${m[1]}`);
  }
  return found;
}

function parseManPage(path: string): ManPage {
  const lines = readFileSync(path, 'utf8').split('\n');
  const sections = new Map<string, string[]>();
  let current = '';
  for (const line of lines) {
    const sh = /^\.SH\s+"?([^"]+)"?/.exec(line);
    if (sh) current = sh[1]!.trim();
    const list = sections.get(current) ?? [];
    list.push(line);
    sections.set(current, list);
  }
  const commands = new Map<string, Set<string>>();
  let name = '';
  let body: string[] = [];
  const flush = () => {
    if (name) commands.set(name, optionsIn(body));
  };
  for (const line of sections.get('COMMANDS') ?? []) {
    const ss = /^\.SS\s+"?([a-z][a-z0-9-]*)/.exec(line);
    if (ss) {
      flush();
      name = ss[1]!;
      body = [];
    } else body.push(line);
  }
  flush();
  return { global: optionsIn(sections.get('OPTIONS') ?? []), commands };
}

function longOptions(cmd: Command): Set<string> {
  return new Set(
    cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined && l !== '--help'),
  );
}

for (const tool of ['simplectl', 'zkfsctl'] as const) {
  describe(`man/${tool}.1`, () => {
    const program = buildProgram(tool);
    const page = new URL(`../../man/${tool}.1`, import.meta.url).pathname;
    const man = parseManPage(page);

    it('is installed with the package (npm links it into share/man/man1)', () => {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        man?: string[];
        files?: string[];
      };
      expect(pkg.man).toContain(`./man/${tool}.1`);
      expect(pkg.files).toContain('man');
    });

    it('holds no control characters (a font escape written as a JavaScript "\\f" becomes a form feed)', () => {
      const text = readFileSync(page, 'utf8');
      const lines = text
        .split('\n')
        .flatMap((line, i) => (/[\x00-\x08\x0b-\x1f\x7f]/.test(line) ? [i + 1] : []));
      expect(lines).toEqual([]);
    });

    it('documents exactly the commands that --help lists', () => {
      expect([...man.commands.keys()].sort()).toEqual(program.commands.map((c) => c.name()).sort());
    });

    it('documents exactly the global options', () => {
      expect([...man.global].sort()).toEqual([...longOptions(program)].sort());
    });

    for (const cmd of program.commands) {
      it(`documents exactly the options of ${cmd.name()}`, () => {
        expect([...(man.commands.get(cmd.name()) ?? [])].sort()).toEqual([...longOptions(cmd)].sort());
      });
    }
  });
}
