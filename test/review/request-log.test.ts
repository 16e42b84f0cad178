/** The request log must not keep a one-time review login code (it travels in /ui/login?code=...). */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { enrolledReviewer, loginUrl } from '../support/review-env.js';

describe('request log', () => {
  let env: TestBroker;
  let log = '';

  beforeAll(async () => {
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        log += chunk.toString('utf8');
        done();
      },
    });
    env = await startTestBroker({ logger: pino({ level: 'info' }, stream) });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('logs a review login without its one-time code', async () => {
    const url = new URL(await loginUrl(await enrolledReviewer(env)));
    const code = url.searchParams.get('code')!;
    expect(code).toMatch(/^rvc_/);

    const reply = await env.broker.app.inject({ method: 'GET', url: `${url.pathname}${url.search}` });
    expect(reply.statusCode).toBe(303);
    expect(log).toContain('/ui/login'); // the request was logged...
    expect(log).not.toContain(code.slice(4)); // ...but not its code
  });
});
