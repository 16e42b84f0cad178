/**
 * onFreePorts: a port taken between the pick and the bind (another test file got it first) costs a
 * retry on new ports, not a failed test file; any other failure is the caller's to see at once.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { onFreePorts } from './ports.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      servers.push(server);
      resolve(server);
    });
  });
}

describe('onFreePorts', () => {
  it('binds again on new ports when the picked one was taken meanwhile', async () => {
    const tried: number[][] = [];
    const bound = await onFreePorts(2, async (ports) => {
      tried.push(ports);
      if (tried.length === 1) await listen(ports[1]!); // someone else takes it first
      return Promise.all(ports.map(listen));
    });
    expect(tried).toHaveLength(2);
    expect(bound.map((server) => (server.address() as { port: number }).port)).toEqual(tried[1]);
  });

  it('passes other failures through without retrying', async () => {
    let calls = 0;
    await expect(
      onFreePorts(1, async () => {
        calls++;
        throw new Error('config_invalid');
      }),
    ).rejects.toThrow('config_invalid');
    expect(calls).toBe(1);
  });

  it('gives up after the given attempts', async () => {
    let calls = 0;
    const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
    await expect(
      onFreePorts(1, async () => {
        calls++;
        throw inUse;
      }, 3),
    ).rejects.toBe(inUse);
    expect(calls).toBe(3);
  });

  it('recognises a child process that reported EADDRINUSE in its output', async () => {
    let calls = 0;
    const value = await onFreePorts(1, async () => {
      if (++calls === 1) throw new Error('exited (1) before it was ready\n--- stderr\nError: listen EADDRINUSE: address already in use 127.0.0.1:8700');
      return 'ok';
    });
    expect([value, calls]).toEqual(['ok', 2]);
  });
});
