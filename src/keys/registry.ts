import { existsSync } from 'node:fs';
import { modulePathOf, pinOf } from '@tessera-broker/sdk/signers';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { TesseraError } from '../errors.js';
import type { KeyStore, KeyStoreKind, Signer } from './key-store.js';
import { KmsKeyStore } from './kms-key-store.js';
import { Pkcs11KeyStore } from './pkcs11-key-store.js';

type KeyStoreSettings = Pick<Config, 'dataDir' | 'pkcs11'>;

/** Registration of key stores: adding one is a new file plus an entry here and in URI_SCHEMES. */
const FACTORIES: Record<KeyStoreKind, (settings: KeyStoreSettings) => Promise<KeyStore>> = {
  pkcs11: async ({ dataDir, pkcs11 }) => {
    // The embedded default keeps its SoftHSM2 token under the data directory.
    const embeddedConf = join(dataDir, 'softhsm', 'softhsm2.conf');
    if (!process.env.SOFTHSM2_CONF && existsSync(embeddedConf)) process.env.SOFTHSM2_CONF = embeddedConf;
    const pin = pinOf(pkcs11);
    if (!pin) throw new TesseraError('config_invalid', 'Set TESSERA_PKCS11_PIN or TESSERA_PKCS11_PIN_FILE (a 0600 file) for the PKCS#11 key store.');
    return Pkcs11KeyStore.open({ modulePath: modulePathOf(pkcs11), tokenLabel: pkcs11.token, pin });
  },
  kms: async () => KmsKeyStore.fromEnvironment(),
};

const URI_SCHEMES: Record<string, KeyStoreKind> = { 'pkcs11:': 'pkcs11', 'aws-kms:': 'kms' };

export function keyStoreKindOf(uri: string): KeyStoreKind {
  const scheme = Object.keys(URI_SCHEMES).find((prefix) => uri.startsWith(prefix));
  if (!scheme) throw new TesseraError('invalid_request', `Unsupported key URI "${uri}": expected pkcs11:... or aws-kms:...`);
  return URI_SCHEMES[scheme]!;
}

/** Opens each kind of key store on first use and routes key URIs to the store that holds them. */
export class KeyStores {
  private readonly opened = new Map<KeyStoreKind, Promise<KeyStore>>();

  constructor(private readonly settings: KeyStoreSettings) {}

  get(kind: KeyStoreKind): Promise<KeyStore> {
    let store = this.opened.get(kind);
    if (!store) {
      store = FACTORIES[kind](this.settings);
      store.catch(() => this.opened.delete(kind));
      this.opened.set(kind, store);
    }
    return store;
  }

  async signer(uri: string): Promise<Signer> {
    return (await this.get(keyStoreKindOf(uri))).getSigner(uri);
  }

  async close(): Promise<void> {
    const stores = await Promise.allSettled(this.opened.values());
    this.opened.clear();
    await Promise.all(stores.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
  }
}
