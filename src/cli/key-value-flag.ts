import { TesseraError } from '../errors.js';

/** A repeatable `--flag name=value` (each name once) -> {name: value}; undefined when none is given. */
export function keyValueFlags(flag: string, specs: readonly string[] = []): Record<string, string> | undefined {
  if (specs.length === 0) return undefined;
  const values: Record<string, string> = {};
  for (const spec of specs) {
    const separator = spec.indexOf('=');
    if (separator <= 0) throw new TesseraError('invalid_request', `${flag} expects <name>=<value> (got "${spec}").`);
    const name = spec.slice(0, separator).trim();
    if (Object.hasOwn(values, name)) throw new TesseraError('invalid_request', `${flag} ${name} is given more than once; give each ${flag.replace(/^--/, '')} once.`);
    values[name] = spec.slice(separator + 1).trim();
  }
  return values;
}
