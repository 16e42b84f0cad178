import { parseDuration } from './duration.js';
import { TesseraError } from './errors.js';

/** A lifetime: whole seconds, or a duration string such as '90s', '5m', '1h'. */
export type Ttl = number | string;

/** Whole seconds (at least 1) from a Ttl; `what` names the setting in the error. */
export function ttlSeconds(ttl: Ttl, what = 'ttl'): number {
  const seconds = typeof ttl === 'number' ? ttl : (parseDuration(ttl) ?? Number.NaN) / 1000;
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new TesseraError('invalid_request', `${what} must be a whole number of seconds or a duration such as 5m (got "${ttl}").`);
  }
  return seconds;
}
