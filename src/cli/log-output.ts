import { type DestinationStream, pino } from 'pino';

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
 * and flushes what is left on exit. pino-pretty is loaded only for a terminal: every CLI command
 * imports this module, and most never log.
 */
export async function logDestination(out: LogOutput = process.stdout): Promise<DestinationStream> {
  if (out.isTTY) {
    const { default: pretty } = await import('pino-pretty');
    return pretty({ destination: out, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  }
  return out.fd === undefined ? out : pino.destination({ dest: out.fd, sync: false });
}
