import { randomBytes } from 'node:crypto';
import { asBuffer, CKK_EC_EDWARDS, formatPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri, Pkcs11Session, type Pkcs11TokenOptions } from '@tessera-broker/sdk/signers';
import pkcs11js from 'pkcs11js';
import type { AesGCM, Handle, Mechanism, PKCS11, Template } from 'pkcs11js';
import { TesseraError } from '../errors.js';
import type { CreateKeyOptions, KeyStore, Signer, WrappingKey } from './key-store.js';

const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
/** DER OID 1.3.101.112 (id-Ed25519). SoftHSM 2.6 rejects the PrintableString "edwards25519" form. */
const ED25519_EC_PARAMS = Buffer.from('06032b6570', 'hex');

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;

export type Pkcs11KeyStoreOptions = Pkcs11TokenOptions;

/**
 * Key store on a PKCS#11 token. Ed25519 key pairs and AES-256 wrapping keys are generated inside
 * the token as sensitive, non-extractable objects; this class only ever reads public attributes.
 * The logged-in session, key lookup and signing are the SDK's Pkcs11Session: agents sign with the
 * same code.
 */
export class Pkcs11KeyStore implements KeyStore {
  readonly kind = 'pkcs11' as const;
  readonly #token: Pkcs11Session;

  private constructor(token: Pkcs11Session) {
    this.#token = token;
  }

  static async open(options: Pkcs11KeyStoreOptions): Promise<Pkcs11KeyStore> {
    return new Pkcs11KeyStore(await Pkcs11Session.open(options));
  }

  handles(uri: string): boolean {
    return /^pkcs11:/i.test(uri);
  }

  /** `tags` are ignored: PKCS#11 objects have no free-form metadata beyond the label. */
  async createSigningKey(options: CreateKeyOptions): Promise<Signer> {
    const { label } = options;
    return this.#token.run('Ed25519 key generation', (pkcs11, session) => {
      this.#assertLabelFree(pkcs11, session, label);
      const common: Template = [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: randomBytes(16) },
      ];
      const keys = pkcs11.C_GenerateKeyPair(
        session,
        { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
        [
          ...common,
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
          { type: pkcs11js.CKA_PRIVATE, value: false },
          { type: pkcs11js.CKA_VERIFY, value: true },
          { type: pkcs11js.CKA_EC_PARAMS, value: ED25519_EC_PARAMS },
        ],
        [
          ...common,
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_SIGN, value: true },
        ],
      );
      return this.#token.signer(pkcs11, session, label, keys.privateKey, keys.publicKey);
    });
  }

  /**
   * Signer URIs carry no `type` attribute: the label names the key pair, and a signer is always
   * backed by its private half. `type=private` is accepted on input.
   */
  async getSigner(uri: string): Promise<Signer> {
    return this.#token.findSigner(this.#resolve(uri, 'private').object);
  }

  async createWrappingKey(options: CreateKeyOptions): Promise<WrappingKey> {
    const { label } = options;
    return this.#token.run('AES key generation', (pkcs11, session) => {
      this.#assertLabelFree(pkcs11, session, label);
      const key = pkcs11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_ENCRYPT, value: true },
        { type: pkcs11js.CKA_DECRYPT, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: randomBytes(16) },
      ]);
      return this.#wrappingKey(label, key);
    });
  }

  async getWrappingKey(uri: string): Promise<WrappingKey> {
    const { object } = this.#resolve(uri, 'secret-key');
    return this.#token.run('key lookup', (pkcs11, session) => {
      const key = this.#token.findOne(pkcs11, session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_LABEL, value: object },
      ]);
      if (key === undefined) {
        throw new TesseraError('key_not_found', `PKCS#11 token "${this.#token.tokenLabel}" has no AES wrapping key labelled "${object}".`);
      }
      return this.#wrappingKey(object, key);
    });
  }

  describe(): string {
    return `pkcs11 module=${this.#token.modulePath} token=${this.#token.tokenLabel}`;
  }

  async close(): Promise<void> {
    await this.#token.close();
  }

  /** AES-256-GCM under a token key; output is `iv || ciphertext || tag`. */
  #wrappingKey(label: string, key: Handle): WrappingKey {
    return Object.freeze({
      uri: formatPkcs11Uri({ token: this.#token.tokenLabel, object: label, type: 'secret-key' }),
      wrap: async (plaintext: Uint8Array) => {
        const iv = randomBytes(GCM_IV_BYTES);
        const sealed = this.#token.run('wrap', (pkcs11, session) => {
          pkcs11.C_EncryptInit(session, gcm(iv), key);
          return pkcs11.C_Encrypt(session, asBuffer(plaintext), Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
        });
        return Buffer.concat([iv, sealed]);
      },
      unwrap: async (wrapped: Uint8Array) => {
        if (wrapped.length < GCM_IV_BYTES + GCM_TAG_BYTES) {
          throw new TesseraError('key_store_error', 'PKCS#11 unwrap failed: the wrapped data is too short.');
        }
        const data = asBuffer(wrapped);
        const sealed = data.subarray(GCM_IV_BYTES);
        // A failed GCM tag check surfaces here (SoftHSM reports CKR_GENERAL_ERROR).
        return this.#token.run('unwrap (corrupt or tampered data, or another key)', (pkcs11, session) => {
          pkcs11.C_DecryptInit(session, gcm(data.subarray(0, GCM_IV_BYTES)), key);
          return pkcs11.C_Decrypt(session, sealed, Buffer.alloc(sealed.length));
        });
      },
    });
  }

  /** Checks a URI names an object of `type` on this store's token; returns the parsed URI. */
  #resolve(uri: string, type: string): Pkcs11Uri {
    const parsed = parsePkcs11Uri(uri);
    if (parsed.token !== this.#token.tokenLabel) {
      throw new TesseraError(
        'key_not_found',
        `PKCS#11 URI ${uri} names token "${parsed.token}", but this key store is on token "${this.#token.tokenLabel}".`,
      );
    }
    if (parsed.type !== undefined && parsed.type !== type) {
      throw new TesseraError('key_not_found', `PKCS#11 URI ${uri} names a ${parsed.type} object, not a ${type} key.`);
    }
    return parsed;
  }

  #assertLabelFree(pkcs11: PKCS11, session: Handle, label: string): void {
    if (label === '') throw new TesseraError('invalid_request', 'A PKCS#11 key label must not be empty.');
    pkcs11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
    try {
      if (pkcs11.C_FindObjects(session, 1).length > 0) {
        throw new TesseraError('conflict', `PKCS#11 token "${this.#token.tokenLabel}" already holds an object labelled "${label}".`);
      }
    } finally {
      pkcs11.C_FindObjectsFinal(session);
    }
  }
}

function gcm(iv: Buffer): Mechanism {
  // The v2.40 CK_GCM_PARAMS layout (with ulIvBits) is the one SoftHSM 2.6 and current HSMs define.
  const parameter: AesGCM = { type: pkcs11js.CK_PARAMS_AES_GCM_v240, iv, ivBits: iv.length * 8, tagBits: GCM_TAG_BYTES * 8 };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}
