import { TesseraError } from '../errors.js';
import type { WrappingKey } from '../keys/key-store.js';
import { keyStoreKindOf, type KeyStores } from '../keys/registry.js';
import type { SettingsRepository } from '../store/repositories/settings.js';

/** The broker's wrapping keys: the current one seals new secrets; each sealed secret names its own. */
export interface WrappingKeys {
  current(): Promise<WrappingKey>;
  get(uri: string): Promise<WrappingKey>;
}

/** Opens keys on first use and keeps the handles, so sealing and opening cost one key-store call. */
export class KeyStoreWrappingKeys implements WrappingKeys {
  private readonly opened = new Map<string, Promise<WrappingKey>>();

  constructor(
    private readonly keyStores: KeyStores,
    private readonly settings: SettingsRepository,
  ) {}

  async current(): Promise<WrappingKey> {
    const uri = await this.settings.get('wrapping_key_uri');
    if (!uri) throw new TesseraError('config_invalid', 'The broker has no wrapping key: run "tessera init" to create it.');
    return this.get(uri);
  }

  get(uri: string): Promise<WrappingKey> {
    let key = this.opened.get(uri);
    if (!key) {
      key = this.keyStores.get(keyStoreKindOf(uri)).then((store) => store.getWrappingKey(uri));
      key.catch(() => this.opened.delete(uri));
      this.opened.set(uri, key);
    }
    return key;
  }
}
