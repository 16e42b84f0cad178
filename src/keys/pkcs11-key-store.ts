import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import type { AesGCM, Handle, Mechanism, PKCS11, Template } from 'pkcs11js';
import { TesseraError } from '../errors.js';
import type { CreateKeyOptions, KeyStore, Signer, WrappingKey } from './key-store.js';

// PKCS#11 3.0 Edwards-curve identifiers; pkcs11js 2.1.7 only ships the 2.40 constants.
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
/** DER OID 1.3.101.112 (id-Ed25519). SoftHSM 2.6 rejects the PrintableString "edwards25519" form. */
const ED25519_EC_PARAMS = Buffer.from('06032b6570', 'hex');

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const ED25519_SIGNATURE_BYTES = 64;

// ---------------------------------------------------------------------------------------------
// Module registry: a PKCS#11 library can be C_Initialize'd only once per process, so every user
// (key stores, token setup, tests) shares one instance per library and the last one out finalizes.
// ---------------------------------------------------------------------------------------------

interface LoadedModule {
  readonly pkcs11: PKCS11;
  users: number;
}

const loadedModules = new Map<string, LoadedModule>();

/** A counted reference on an initialised PKCS#11 module. */
export interface Pkcs11ModuleLease {
  readonly pkcs11: PKCS11;
  /** Drops this reference; the module is finalized when the last one goes. Idempotent. */
  release(): void;
}

export function acquirePkcs11Module(modulePath: string): Pkcs11ModuleLease {
  const key = canonicalPath(modulePath);
  let entry = loadedModules.get(key);
  if (entry === undefined) {
    const pkcs11 = new pkcs11js.PKCS11();
    try {
      pkcs11.load(modulePath);
    } catch (error) {
      throw new TesseraError('config_invalid', `Cannot load PKCS#11 module ${modulePath}: ${messageOf(error)}`, { cause: error });
    }
    try {
      pkcs11.C_Initialize();
    } catch (error) {
      // Another copy of this file in the process (e.g. a test runner re-evaluating modules) may
      // already have initialised the library; sharing it is what the registry is for.
      if (!isPkcs11Error(error, pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
        pkcs11.close();
        throw keyStoreError(`C_Initialize of ${modulePath}`, error);
      }
    }
    entry = { pkcs11, users: 0 };
    loadedModules.set(key, entry);
  }
  const loaded = entry;
  loaded.users += 1;
  let released = false;
  return {
    pkcs11: loaded.pkcs11,
    release() {
      if (released) return;
      released = true;
      loaded.users -= 1;
      if (loaded.users > 0) return;
      loadedModules.delete(key);
      try {
        loaded.pkcs11.C_Finalize();
      } finally {
        loaded.pkcs11.close();
      }
    },
  };
}

/** The slot holding the initialised token with this label, if any. */
export function findTokenSlot(pkcs11: PKCS11, tokenLabel: string): Handle | undefined {
  return pkcs11.C_GetSlotList(true).find((slot) => {
    const info = pkcs11.C_GetTokenInfo(slot);
    // Token labels are fixed 32-byte fields, blank padded.
    return (info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0 && info.label.trimEnd() === tokenLabel;
  });
}

// ---------------------------------------------------------------------------------------------
// RFC 7512 URIs
// ---------------------------------------------------------------------------------------------

export interface Pkcs11Uri {
  readonly token: string;
  readonly object: string;
  /** RFC 7512 object type: `private`, `secret-key`, ... */
  readonly type?: string;
}

/** Percent-encodes everything but RFC 3986 unreserved characters (RFC 7512 allows encoding any). */
const encodeAttribute = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const path = [`token=${encodeAttribute(uri.token)}`, `object=${encodeAttribute(uri.object)}`];
  if (uri.type !== undefined) path.push(`type=${encodeAttribute(uri.type)}`);
  return `pkcs11:${path.join(';')}`;
}

/**
 * Parses the path part of a PKCS#11 URI. token and object are required; other RFC 7512 attributes
 * (id, serial, manufacturer, ...) are accepted and ignored so URIs printed by p11tool still work;
 * the query part is ignored, in particular any pin-value: the PIN comes from configuration.
 */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) throw invalidUri(uri, 'it does not start with "pkcs11:"');
  const path = uri.slice('pkcs11:'.length).split('?', 1)[0] ?? '';
  const attributes = new Map<string, string>();
  for (const part of path.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalidUri(uri, `"${part}" is not an attribute=value pair`);
    const name = part.slice(0, eq);
    if (attributes.has(name)) throw invalidUri(uri, `attribute "${name}" appears twice`);
    let value: string;
    try {
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      throw invalidUri(uri, `attribute "${name}" has an invalid percent-encoding`);
    }
    attributes.set(name, value);
  }
  const token = attributes.get('token');
  const object = attributes.get('object');
  if (token === undefined || object === undefined) throw invalidUri(uri, 'it needs both token= and object=');
  const type = attributes.get('type');
  return type === undefined ? { token, object } : { token, object, type };
}

function invalidUri(uri: string, reason: string): TesseraError {
  return new TesseraError('config_invalid', `Invalid PKCS#11 URI ${JSON.stringify(uri)}: ${reason}.`);
}

// ---------------------------------------------------------------------------------------------
// The key store
// ---------------------------------------------------------------------------------------------

export interface Pkcs11KeyStoreOptions {
  /** Path to the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly modulePath: string;
  readonly tokenLabel: string;
  /** User (CKU_USER) PIN. */
  readonly pin: string;
}

/**
 * Key store on a PKCS#11 token. Ed25519 key pairs and AES-256 wrapping keys are generated inside
 * the token as sensitive, non-extractable objects; this class only ever reads public attributes.
 *
 * One session serves all operations: pkcs11js' synchronous calls run to completion on the JS
 * thread, so an Init/operation pair (C_SignInit + C_Sign) can never interleave with another one,
 * however many sign() calls are in flight. A call costs tens to hundreds of microseconds.
 */
export class Pkcs11KeyStore implements KeyStore {
  readonly kind = 'pkcs11' as const;
  readonly #lease: Pkcs11ModuleLease;
  readonly #modulePath: string;
  readonly #tokenLabel: string;
  readonly #slot: Handle;
  /** Undefined once closed. */
  #session: Handle | undefined;

  private constructor(lease: Pkcs11ModuleLease, modulePath: string, tokenLabel: string, slot: Handle, session: Handle) {
    this.#lease = lease;
    this.#modulePath = modulePath;
    this.#tokenLabel = tokenLabel;
    this.#slot = slot;
    this.#session = session;
  }

  static async open(options: Pkcs11KeyStoreOptions): Promise<Pkcs11KeyStore> {
    const { modulePath, tokenLabel, pin } = options;
    const lease = acquirePkcs11Module(modulePath);
    try {
      const slot = findTokenSlot(lease.pkcs11, tokenLabel);
      if (slot === undefined) {
        throw new TesseraError('config_invalid', `PKCS#11 module ${modulePath} has no initialised token labelled "${tokenLabel}".`);
      }
      const session = openSession(lease.pkcs11, slot);
      try {
        login(lease.pkcs11, session, tokenLabel, pin);
      } catch (error) {
        lease.pkcs11.C_CloseSession(session);
        throw error;
      }
      return new Pkcs11KeyStore(lease, modulePath, tokenLabel, slot, session);
    } catch (error) {
      lease.release();
      throw error instanceof TesseraError ? error : keyStoreError(`opening token "${tokenLabel}"`, error);
    }
  }

  handles(uri: string): boolean {
    return /^pkcs11:/i.test(uri);
  }

  /** `tags` are ignored: PKCS#11 objects have no free-form metadata beyond the label. */
  async createSigningKey(options: CreateKeyOptions): Promise<Signer> {
    const { label } = options;
    return this.#run('Ed25519 key generation', (pkcs11, session) => {
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
      return this.#signer(pkcs11, session, label, keys.privateKey, keys.publicKey);
    });
  }

  /**
   * Signer URIs carry no `type` attribute: the label names the key pair, and a signer is always
   * backed by its private half. `type=private` is accepted on input.
   */
  async getSigner(uri: string): Promise<Signer> {
    const { object } = this.#resolve(uri, 'private');
    return this.#run('key lookup', (pkcs11, session) => {
      const byLabel = (objectClass: number): Template => [
        { type: pkcs11js.CKA_CLASS, value: objectClass },
        { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: pkcs11js.CKA_LABEL, value: object },
      ];
      const privateKey = findOne(pkcs11, session, byLabel(pkcs11js.CKO_PRIVATE_KEY));
      const publicKey = findOne(pkcs11, session, byLabel(pkcs11js.CKO_PUBLIC_KEY));
      if (privateKey === undefined || publicKey === undefined) {
        throw new TesseraError('key_not_found', `PKCS#11 token "${this.#tokenLabel}" has no Ed25519 key pair labelled "${object}".`);
      }
      return this.#signer(pkcs11, session, object, privateKey, publicKey);
    });
  }

  async createWrappingKey(options: CreateKeyOptions): Promise<WrappingKey> {
    const { label } = options;
    return this.#run('AES key generation', (pkcs11, session) => {
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
    return this.#run('key lookup', (pkcs11, session) => {
      const key = findOne(pkcs11, session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_LABEL, value: object },
      ]);
      if (key === undefined) {
        throw new TesseraError('key_not_found', `PKCS#11 token "${this.#tokenLabel}" has no AES wrapping key labelled "${object}".`);
      }
      return this.#wrappingKey(object, key);
    });
  }

  describe(): string {
    return `pkcs11 module=${this.#modulePath} token=${this.#tokenLabel}`;
  }

  async close(): Promise<void> {
    const session = this.#session;
    if (session === undefined) return;
    this.#session = undefined;
    try {
      this.#lease.pkcs11.C_CloseSession(session);
    } finally {
      this.#lease.release();
    }
  }

  #signer(pkcs11: PKCS11, session: Handle, label: string, privateKey: Handle, publicKey: Handle): Signer {
    const [point] = pkcs11.C_GetAttributeValue(session, publicKey, [{ type: pkcs11js.CKA_EC_POINT }]);
    return Object.freeze({
      uri: formatPkcs11Uri({ token: this.#tokenLabel, object: label }),
      publicKey: ed25519PublicKey(point?.value),
      sign: async (data: Uint8Array) =>
        this.#run('sign', (p11, s) => {
          p11.C_SignInit(s, { mechanism: CKM_EDDSA }, privateKey);
          return p11.C_Sign(s, asBuffer(data), Buffer.alloc(ED25519_SIGNATURE_BYTES));
        }),
    });
  }

  /** AES-256-GCM under a token key; output is `iv || ciphertext || tag`. */
  #wrappingKey(label: string, key: Handle): WrappingKey {
    return Object.freeze({
      uri: formatPkcs11Uri({ token: this.#tokenLabel, object: label, type: 'secret-key' }),
      wrap: async (plaintext: Uint8Array) => {
        const iv = randomBytes(GCM_IV_BYTES);
        const sealed = this.#run('wrap', (pkcs11, session) => {
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
        return this.#run('unwrap (corrupt or tampered data, or another key)', (pkcs11, session) => {
          pkcs11.C_DecryptInit(session, gcm(data.subarray(0, GCM_IV_BYTES)), key);
          return pkcs11.C_Decrypt(session, sealed, Buffer.alloc(sealed.length));
        });
      },
    });
  }

  /** Checks a URI names an object of `type` on this store's token; returns the parsed URI. */
  #resolve(uri: string, type: string): Pkcs11Uri {
    const parsed = parsePkcs11Uri(uri);
    if (parsed.token !== this.#tokenLabel) {
      throw new TesseraError(
        'key_not_found',
        `PKCS#11 URI ${uri} names token "${parsed.token}", but this key store is on token "${this.#tokenLabel}".`,
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
        throw new TesseraError('conflict', `PKCS#11 token "${this.#tokenLabel}" already holds an object labelled "${label}".`);
      }
    } finally {
      pkcs11.C_FindObjectsFinal(session);
    }
  }

  /** Runs synchronous PKCS#11 calls on the store's session, mapping failures to TesseraErrors. */
  #run<T>(action: string, operation: (pkcs11: PKCS11, session: Handle) => T): T {
    const session = this.#session;
    if (session === undefined) throw new TesseraError('key_store_error', 'The PKCS#11 key store is closed.');
    try {
      return operation(this.#lease.pkcs11, session);
    } catch (error) {
      if (error instanceof TesseraError) throw error;
      this.#replaceSession(session);
      throw keyStoreError(action, error);
    }
  }

  /**
   * A failed call may leave an operation active on the session, and PKCS#11 2.40 cannot cancel
   * it; a fresh session keeps later calls working. It opens before the old one closes so the
   * token stays logged in (login state lasts while the application has any session open).
   */
  #replaceSession(broken: Handle): void {
    const pkcs11 = this.#lease.pkcs11;
    try {
      this.#session = openSession(pkcs11, this.#slot);
      pkcs11.C_CloseSession(broken);
    } catch {
      // The token itself is failing; keep the old session and let the next call report it.
    }
  }
}

function openSession(pkcs11: PKCS11, slot: Handle): Handle {
  return pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
}

function login(pkcs11: PKCS11, session: Handle, tokenLabel: string, pin: string): void {
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (error) {
    // Login state is per token and process: another store on the same token already logged in.
    if (isPkcs11Error(error, pkcs11js.CKR_USER_ALREADY_LOGGED_IN)) return;
    const rejected = [pkcs11js.CKR_PIN_INCORRECT, pkcs11js.CKR_PIN_LEN_RANGE, pkcs11js.CKR_PIN_LOCKED, pkcs11js.CKR_PIN_EXPIRED];
    if (rejected.some((code) => isPkcs11Error(error, code))) {
      throw new TesseraError(
        'config_invalid',
        `PKCS#11 login to token "${tokenLabel}" failed: the token rejected the configured user PIN (${messageOf(error)}).`,
      );
    }
    throw keyStoreError(`login to token "${tokenLabel}"`, error);
  }
}

/** At most one object matches: labels are unique in a Tessera token, so two is an error. */
function findOne(pkcs11: PKCS11, session: Handle, template: Template): Handle | undefined {
  pkcs11.C_FindObjectsInit(session, template);
  let found: Handle[];
  try {
    found = pkcs11.C_FindObjects(session, 2);
  } finally {
    pkcs11.C_FindObjectsFinal(session);
  }
  if (found.length > 1) throw new TesseraError('key_store_error', 'PKCS#11 token holds several keys with the same label.');
  return found[0];
}

/** CKA_EC_POINT is a DER OCTET STRING (`04 20 || key`) per PKCS#11 3.0; some HSMs return the raw key. */
function ed25519PublicKey(point: Buffer | undefined): Uint8Array {
  if (point?.length === 32) return new Uint8Array(point);
  if (point?.length === 34 && point[0] === 0x04 && point[1] === 0x20) return new Uint8Array(point.subarray(2));
  throw new TesseraError('key_store_error', 'PKCS#11 token returned an Ed25519 CKA_EC_POINT in an unknown encoding.');
}

function gcm(iv: Buffer): Mechanism {
  // The v2.40 CK_GCM_PARAMS layout (with ulIvBits) is the one SoftHSM 2.6 and current HSMs define.
  const parameter: AesGCM = { type: pkcs11js.CK_PARAMS_AES_GCM_v240, iv, ivBits: iv.length * 8, tagBits: GCM_TAG_BYTES * 8 };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function canonicalPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function isPkcs11Error(error: unknown, code: number): boolean {
  return error instanceof pkcs11js.Pkcs11Error && error.code === code;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function keyStoreError(action: string, error: unknown): TesseraError {
  return new TesseraError('key_store_error', `PKCS#11 ${action} failed: ${messageOf(error)}`, { cause: error });
}
