import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago (the OS picks it). Another test file can take it
 * before anyone binds it: to bind it, use onFreePorts(); a process that binds itself can bind
 * port 0 and report its address instead. Alone, it suits only an address meant to refuse.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Calls `bind` with `count` free loopback ports. A port found free can be taken by another test
 * file before `bind` binds it, so a `bind` that fails with EADDRINUSE is tried again on new ports
 * (`bind` must clean up after its own failure).
 */
export async function onFreePorts<T>(count: number, bind: (ports: number[]) => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    try {
      return await bind(ports);
    } catch (error) {
      if (attempt >= attempts || !isAddressInUse(error)) throw error;
    }
  }
}

/** An error (or one of its causes) from a bind to an address in use, in-process or a child's output in the message. */
function isAddressInUse(error: unknown): boolean {
  for (let current = error; current instanceof Error; current = current.cause) {
    if ((current as NodeJS.ErrnoException).code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(current.message)) return true;
  }
  return false;
}
