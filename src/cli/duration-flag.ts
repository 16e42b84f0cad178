import { parseDuration } from '../config/duration.js';
import { TesseraError } from '../errors.js';

/**
 * Whole seconds from a lifetime flag (`--ttl 15m`, `--max-ttl 1h`, or bare seconds); anything
 * shorter than a second, or not a whole number of seconds, is refused naming the flag.
 */
export function durationFlagSeconds(text: string, flag: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms < 1000 || ms % 1000 !== 0) {
    throw new TesseraError('invalid_request', `${flag} must be a positive duration of at least 1s, such as 90s, 15m or 1h (got "${text}").`);
  }
  return ms / 1000;
}
