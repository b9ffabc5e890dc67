/**
 * Parsers of numeric and choice options for every command: a bad value is a
 * usage error (exit code 2) whose message names the option and what it takes.
 *
 *   .option('--rows <n>', 'events to replay', intOption('--rows', 1))
 */
import { InvalidArgumentError } from 'commander';

/** An integer in min..max, naming the option in the error. */
export function intOption(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max} (got ${JSON.stringify(raw)})`);
    return n;
  };
}

/** A finite number in min..max (exclusive of min when `exclusiveMin`), naming the option in the error. */
export function numberOption(name: string, min = 0, max = Number.MAX_VALUE, exclusiveMin = false) {
  return (raw: string): number => {
    const n = Number(raw);
    const low = exclusiveMin ? n > min : n >= min;
    if (raw.trim() === '' || !Number.isFinite(n) || !low || n > max) throw new InvalidArgumentError(`${name} must be a number ${exclusiveMin ? `above ${min}` : `from ${min}`}${max === Number.MAX_VALUE ? '' : ` to ${max}`} (got ${JSON.stringify(raw)})`);
    return n;
  };
}

/** One of `choices`, naming the option in the error. */
export function choiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (raw: string): T => {
    if (!(choices as readonly string[]).includes(raw)) throw new InvalidArgumentError(`${name} must be one of ${choices.join(', ')} (got ${JSON.stringify(raw)})`);
    return raw as T;
  };
}
