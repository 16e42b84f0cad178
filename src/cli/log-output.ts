import { type DestinationStream, pino } from 'pino';
import pretty from 'pino-pretty';

/** What `tessera serve` logs to: its stdout, or a stand-in in tests. */
export type LogOutput = NodeJS.WritableStream & {
  readonly isTTY?: boolean;
  /** a file descriptor to write to directly (process.stdout's is 1) */
  readonly fd?: number;
};

/**
 * A person at a terminal reads pino-pretty's lines; anything else (a pipe, a file, a log collector)
 * gets one JSON object per line. JSON to a file descriptor is written asynchronously: two lines per
 * request written synchronously would cost the event loop a write(2) each; sonic-boom coalesces them
 * and flushes what is left on exit.
 */
export function logDestination(out: LogOutput = process.stdout): DestinationStream {
  if (out.isTTY) return pretty({ destination: out, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  return out.fd === undefined ? out : pino.destination({ dest: out.fd, sync: false });
}
