/**
 * How an error message names the option a bad value came from, as the user
 * typed it: `--mode 'weird'` on the command line, `-o mode=weird` through
 * `docker volume create`. A parser shared by both faces takes one of these,
 * so no caller has to wrap its message in a second name for the same option.
 */
export interface OptionName {
  /** The option alone: `HOSTS`, `--mode`, `-o hosts`. */
  name: string;
  /** The option with the value given: `HOSTS 'a/b'`, `-o hosts=a/b`. */
  withValue(value: string): string;
}

/** A command-line flag or argument (`--mode`, `HOSTS`), its value quoted after it. */
export function cliOption(name: string): OptionName {
  return { name, withValue: (value) => `${name} '${value}'` };
}

/** A `-o KEY=VALUE` option of a Docker volume driver. */
export function dockerOption(key: string): OptionName {
  return { name: `-o ${key}`, withValue: (value) => `-o ${key}=${value}` };
}
