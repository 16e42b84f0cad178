/**
 * `tessera serve` logs for whoever reads its stdout: pino-pretty's lines at a terminal, JSON lines
 * otherwise (test/cli/quickstart.test.ts reads the JSON through a pipe).
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { logDestination } from '../../src/cli/log-output.js';

/** A stand-in for stdout that collects what is written; `isTTY` as a terminal or a pipe reports it. */
function fakeStdout(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return Object.assign(stream, { isTTY, chunks });
}

describe('serve log format', () => {
  it('a terminal gets human-readable lines', async () => {
    const out = fakeStdout(true);
    pino({ level: 'info' }, await logDestination(out)).info({ publicUrl: 'http://127.0.0.1:8700' }, 'tessera broker listening');
    const text = out.chunks.join('');
    expect(text).toMatch(/INFO.*tessera broker listening/);
    expect(text).toContain('publicUrl: "http://127.0.0.1:8700"');
    expect(() => JSON.parse(text)).toThrow();
  });

  it('a pipe or file gets one JSON object per line', async () => {
    const out = fakeStdout(false);
    pino({ level: 'info' }, await logDestination(out)).info({ publicUrl: 'http://127.0.0.1:8700' }, 'tessera broker listening');
    const lines = out.chunks.join('').trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, msg: 'tessera broker listening', publicUrl: 'http://127.0.0.1:8700' });
  });
});
