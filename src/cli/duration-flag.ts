import { parseDuration } from '@tessera-broker/sdk';
import { TesseraError } from '../errors.js';
import { MAX_TTL_SECONDS } from '@tessera-broker/sdk/wire';

const MAX_DAYS = MAX_TTL_SECONDS / 86_400;

/**
 * Whole seconds from a lifetime flag (`--ttl 15m`, `--max-ttl 1h`, or bare seconds), within what
 * the API accepts for any TTL; anything else is refused naming the flag (the API would name its
 * field, e.g. ttl_seconds).
 */
export function durationFlagSeconds(text: string, flag: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms < 1000 || ms % 1000 !== 0 || ms / 1000 > MAX_TTL_SECONDS) {
    throw new TesseraError('invalid_request', `${flag} must be a positive duration from 1s to ${MAX_DAYS}d, such as 90s, 15m or 1h (got "${text}").`);
  }
  return ms / 1000;
}
