/** Proxy tests: a broker whose credential proxy listens on its own loopback port. */
import { parseHostPort } from '../../src/config/config.js';
import type { ApiCredential } from '../../src/sdk/wire.js';
import { startTestBroker, type TestBroker, type TestBrokerOptions } from '../support/broker.js';

export type { ApiCredential } from '../../src/sdk/wire.js';

export async function startProxyBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const broker = await startTestBroker(options);
  await broker.broker.proxy.listen(parseHostPort(broker.config.proxyListen));
  return broker;
}

/** Options for `new Stripe(api_key, ...)` from a lease's base_url. */
export function stripeOptions(credential: ApiCredential) {
  const url = new URL(credential.base_url);
  return { host: url.hostname, port: Number(url.port), protocol: url.protocol.slice(0, -1) as 'http' | 'https', maxNetworkRetries: 0 };
}
