/**
 * `tessera serve` with one of its ports taken must fail loudly: a non-zero exit and a message
 * naming the address, every time (it once exited 0 without a word, 2 runs out of 3).
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PreparedBroker, prepareBroker } from '../support/broker.js';
import { runCli } from '../support/cli.js';

const RUNS = 3;

function holdPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

describe('tessera serve: a port already in use', () => {
  let prepared: PreparedBroker;
  let held: Server;
  let heldAddress: string;

  beforeAll(async () => {
    prepared = await prepareBroker();
    held = await holdPort();
    heldAddress = `127.0.0.1:${(held.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => held?.close(resolve));
    await prepared?.cleanup();
  });

  for (const [setting, name] of [['TESSERA_PROXY_LISTEN', 'proxy'], ['TESSERA_LISTEN', 'API']] as const) {
    it(`the ${name} port: exits non-zero naming the address, ${RUNS} runs out of ${RUNS}`, async () => {
      for (let run = 0; run < RUNS; run++) {
        const result = await runCli(['serve'], { env: { ...prepared.env, [setting]: heldAddress } });
        expect(result.code, result.stderr).not.toBe(0);
        expect(result.stderr).toContain(heldAddress);
        expect(result.stderr).toContain(setting);
      }
    }, 30_000 * RUNS); // each run starts a broker process
  }
});
