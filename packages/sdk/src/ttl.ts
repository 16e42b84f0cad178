import { parseDuration } from './duration.js';
import { TesseraError } from './errors.js';
import { MAX_TTL_SECONDS } from './wire/leases.js';

/** A lifetime: whole seconds, or a duration string such as '90s', '5m', '1h'. */
export type Ttl = number | string;

const MAX_DAYS = MAX_TTL_SECONDS / 86_400;

/**
 * Whole seconds from a Ttl, within what the API accepts for any TTL (1 s to 365 d); anything else
 * is refused naming `what` (the option or flag the caller knows it by: the API would name its
 * field, e.g. ttl_seconds). The CLI's lifetime flags use it too.
 */
export function ttlSeconds(ttl: Ttl, what = 'ttl'): number {
  const seconds = typeof ttl === 'number' ? ttl : (parseDuration(ttl) ?? Number.NaN) / 1000;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_TTL_SECONDS) {
    throw new TesseraError('invalid_request', `${what} must be a positive duration from 1s to ${MAX_DAYS}d, such as 90s, 15m or 1h (got "${ttl}").`);
  }
  return seconds;
}
