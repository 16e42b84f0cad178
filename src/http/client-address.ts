/**
 * Whose address a request is counted against (per-address failure limits, rejection summaries,
 * request logs). Behind a load balancer every client arrives from the balancer's address, so one
 * client's junk would lock out all; the balancer names the client in X-Forwarded-For. From any other
 * peer that header is a claim the attacker writes, so it is believed only from the peers listed in
 * TESSERA_TRUSTED_PROXIES (addresses or CIDR ranges; none by default).
 */
import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';

/** Whether the hop at `address` is a trusted proxy (fastify's trustProxy function). */
export type ProxyTrust = (address: string, hop: number) => boolean;

/** The compiled TESSERA_TRUSTED_PROXIES list; throws on an entry that is no address or range. */
export function proxyTrust(trusted: readonly string[]): ProxyTrust {
  return proxyAddr.compile([...trusted]);
}

/** The socket's peer, or, while it and each next hop are trusted, the address X-Forwarded-For names before them. */
export function clientAddress(request: IncomingMessage, trust: ProxyTrust): string {
  return proxyAddr(request, trust);
}
