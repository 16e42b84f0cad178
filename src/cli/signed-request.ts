import type { Command } from 'commander';
import { BrokerClient } from '@tessera-broker/sdk';
import { adminClient, brokerUrl, commandConfig, identityKeyUri, withKeyStores } from './context.js';

/** One request signed as the admin identity, with the key stores open only for its duration. */
export function adminRequest<T>(command: Command, method: string, path: string, body?: unknown): Promise<T> {
  const config = commandConfig(command);
  return withKeyStores(config, async (keyStores) => (await adminClient(command, config, keyStores)).request<T>(method, path, body));
}

/**
 * Runs `work` with a client signing as the identity whose key is `keyUri` (node-side commands);
 * without one, TESSERA_KEY or the key enrolled from this data dir (identityKeyUri).
 */
export function asIdentity<T>(command: Command, keyUri: string | undefined, work: (client: BrokerClient) => Promise<T>): Promise<T> {
  const config = commandConfig(command);
  const key = identityKeyUri(config, keyUri);
  const url = brokerUrl(command, config); // a bad --broker is reported before the key store opens
  return withKeyStores(config, async (keyStores) => work(await BrokerClient.connect(url, await keyStores.signer(key))));
}

/** `?a=1&b=2` from the defined values, or '' when there are none. */
export function queryString(params: Readonly<Record<string, string | undefined>>): string {
  const defined = Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined);
  return defined.length ? `?${new URLSearchParams(defined).toString()}` : '';
}
