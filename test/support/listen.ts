import type { Broker } from '../../src/broker.js';
import { parseHostPort } from '../../src/config/config.js';

/** The broker's API listening on `port` (and its credential proxy on `proxyListen`, if given); closed again if that fails. */
export async function listenInProcess(port: number, created: Promise<Broker>, proxyListen?: string): Promise<Broker> {
  const broker = await created;
  try {
    await broker.app.listen({ host: '127.0.0.1', port });
    if (proxyListen !== undefined) await broker.proxy.listen(parseHostPort(proxyListen));
    return broker;
  } catch (error) {
    await broker.close();
    throw error;
  }
}
