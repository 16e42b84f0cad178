/** A handle on an Ed25519 private key that stays inside its key store (PKCS#11 token or KMS). */
export interface Signer {
  /** Where the key lives, e.g. `pkcs11:token=tessera;object=agent%3Abot` or `aws-kms:<key id>`. */
  readonly uri: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Pure Ed25519 (RFC 8032) signature over `data`: 64 bytes. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** A signer the SDK opened from a key URI, with the token session or KMS client behind it. */
export interface OpenedSigner {
  readonly signer: Signer;
  close(): Promise<void>;
}
