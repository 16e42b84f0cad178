import type { Command } from 'commander';
import { BrokerClient } from '@tessera-broker/sdk';
import { type Config, type ConfigOverrides, HOST_PORT, loadConfig } from '../config/config.js';
import { TesseraError } from '../errors.js';
import { KeyStores } from '../keys/registry.js';

export interface GlobalOptions {
  dataDir?: string;
  broker?: string;
}

/** Configuration for a command, from the global flags (`--data-dir`) plus environment and tessera.json. */
export function commandConfig(command: Command, overrides: Omit<ConfigOverrides, 'dataDir'> = {}): Config {
  const globals = command.optsWithGlobals<GlobalOptions>();
  return loadConfig({ dataDir: globals.dataDir, ...overrides });
}

/** The broker a client command talks to: --broker, then TESSERA_URL, then the local default. */
export function brokerUrl(command: Command, config: Config): string {
  const flag = command.optsWithGlobals<GlobalOptions>().broker;
  if (flag !== undefined) return parseBrokerUrl(flag, '--broker');
  if (process.env.TESSERA_URL !== undefined) return parseBrokerUrl(process.env.TESSERA_URL, 'TESSERA_URL');
  return config.publicUrl;
}

/** An http(s) URL; a bare `host:port` (as TESSERA_LISTEN is written) means http://host:port. */
function parseBrokerUrl(text: string, setting: string): string {
  const withScheme = HOST_PORT.test(text) ? `http://${text}` : text;
  if (URL.canParse(withScheme) && /^https?:$/.test(new URL(withScheme).protocol)) return withScheme.replace(/\/+$/, '');
  throw new TesseraError('config_invalid', `${setting} expects the broker's URL, http(s)://host:port or host:port, e.g. http://127.0.0.1:8700 (got "${text}").`);
}

export const KEY_HELP = 'the identity key, pkcs11:... or aws-kms:... (default: TESSERA_KEY, else the key enrolled with this data dir)';

/**
 * The identity key of an agent command: --key, then TESSERA_KEY, then the key `tessera enroll`
 * remembered for this data dir.
 */
export function identityKeyUri(config: Config, flag: string | undefined): string {
  const keyUri = flag ?? config.identityKeyUri;
  if (keyUri === undefined || keyUri === '') {
    throw new TesseraError(
      'invalid_request',
      `No identity key: pass --key <uri>, set TESSERA_KEY, or run "tessera enroll --key <uri>" with this data dir (${config.dataDir}) first.`,
    );
  }
  return keyUri;
}

/** Runs `work` with the key stores open, closing them however it ends. */
export async function withKeyStores<T>(config: Config, work: (keyStores: KeyStores) => Promise<T>): Promise<T> {
  const keyStores = new KeyStores(config);
  try {
    return await work(keyStores);
  } finally {
    await keyStores.close();
  }
}

/** A client signing as the admin identity created by `tessera init`. */
export async function adminClient(command: Command, config: Config, keyStores: KeyStores): Promise<BrokerClient> {
  if (!config.adminKeyUri) {
    throw new TesseraError('config_invalid', `No admin key: run "tessera init" (data dir ${config.dataDir}) or set TESSERA_ADMIN_KEY.`);
  }
  return BrokerClient.connect(brokerUrl(command, config), await keyStores.signer(config.adminKeyUri));
}

/** Prints `data` as JSON with --json, else as the human-readable lines `human` makes. */
export function output(json: boolean | undefined, data: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Exit status of a revoking command (`lease revoke`, `leases revoke`, `leases retry`, `identity
 * revoke`) that left a lease revocation-pending: its credential may still work upstream. Errors
 * exit 1. Documented in docs/PROTOCOL.md §5.3.
 */
const EXIT_REVOCATION_PENDING = 3;

/** Prints every lease still revocation-pending with the upstream's reason, and sets the exit status. */
export function reportPending(pending: number, failures: readonly { lease_id: string; backend: string; error: string }[]): void {
  if (pending === 0) return;
  for (const failure of failures) process.stderr.write(`tessera: ${failure.lease_id} (${failure.backend}) is revocation-pending: ${failure.error}\n`);
  if (pending > failures.length) process.stderr.write(`tessera: ... and ${pending - failures.length} more revocation-pending lease(s)\n`);
  process.exitCode = EXIT_REVOCATION_PENDING;
}
