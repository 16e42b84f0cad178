/**
 * The key-store seam. A key store creates and holds private keys inside a KMS or HSM and hands out
 * signer handles: the caller gets a public key and a sign() function, never key bytes.
 * One file per implementation (pkcs11-key-store.ts, kms-key-store.ts), registered in registry.ts.
 */

import type { Signer } from '@tessera-broker/sdk';

/** A handle on an Ed25519 private key that stays inside its key store: the SDK's seam, shared. */
export type { Signer };

export interface CreateKeyOptions {
  /** Human-readable label: PKCS#11 CKA_LABEL / KMS description. Unique per key store. */
  readonly label: string;
  /** Extra metadata: KMS tags; ignored where the store has none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Symmetric key held in the store, used to wrap (encrypt) per-secret data keys
 * for envelope encryption of upstream root secrets.
 */
export interface WrappingKey {
  readonly uri: string;
  wrap(plaintext: Uint8Array): Promise<Uint8Array>;
  unwrap(ciphertext: Uint8Array): Promise<Uint8Array>;
}

export type KeyStoreKind = 'pkcs11' | 'kms';

export interface KeyStore {
  readonly kind: KeyStoreKind;
  /** True when `uri` names a key in this kind of store (by URI scheme). */
  handles(uri: string): boolean;
  /** Generates a new Ed25519 key pair inside the store. Fails if the label is taken. */
  createSigningKey(options: CreateKeyOptions): Promise<Signer>;
  /** Opens an existing signing key. Throws TesseraError('key_not_found') when absent. */
  getSigner(uri: string): Promise<Signer>;
  /** Generates a new non-extractable symmetric wrapping key inside the store. */
  createWrappingKey(options: CreateKeyOptions): Promise<WrappingKey>;
  getWrappingKey(uri: string): Promise<WrappingKey>;
  /** One line for logs and `tessera status`: module/token or region/endpoint; never secrets. */
  describe(): string;
  close(): Promise<void>;
}
