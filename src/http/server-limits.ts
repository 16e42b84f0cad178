/**
 * What both listeners (the broker's API and the credential proxy) allow a client, so that slow or
 * piled-up connections cannot hold the broker's sockets and memory (docs/PROTOCOL.md §11).
 */
import { createServer, type RequestListener, type Server, type ServerOptions } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';

export interface ServerLimits {
  /** The request line and headers must arrive within this, from the connection or the request's first byte. */
  readonly headersTimeoutMs: number;
  /** The whole request, body included, from its first byte. Not the response: proxied answers may stream for as long as the upstream takes. */
  readonly bodyTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections per listener; more are closed at accept. */
  readonly maxConnections: number;
  /** Open connections per listener from one remote address; more are closed at accept. 0: no limit. */
  readonly maxConnectionsPerAddress: number;
}

/** An HTTP server that cuts slow requests (408) and closes connections over the limits at accept. */
export function createLimitedServer(limits: ServerLimits, handler: RequestListener, options: ServerOptions = {}): Server {
  const server = createServer(
    {
      ...options,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.bodyTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks both timeouts on this timer (every 30 s by default, which would let a slow
      // client stay for the timeout plus up to 30 s): a cut comes at most a quarter late.
      connectionsCheckingInterval: Math.min(limits.headersTimeoutMs, limits.bodyTimeoutMs) / 4,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  limitConnectionsPerAddress(server, limits.maxConnectionsPerAddress);
  return server;
}

/** Closes a new connection at accept when its remote address already holds `max` open ones (0: no limit). */
export function limitConnectionsPerAddress(server: NetServer, max: number): void {
  if (max === 0) return;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) return; // already gone
    const count = open.get(address) ?? 0;
    if (count >= max) return void socket.destroy();
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = open.get(address)! - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
