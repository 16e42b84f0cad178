import type { Handle, PKCS11, Template } from 'pkcs11js';
import { TesseraError } from '../errors.js';
import { acquirePkcs11Module, findTokenSlot, isPkcs11Error, loadPkcs11js, messageOf, type Pkcs11Js, type Pkcs11ModuleLease, pkcs11Error } from './pkcs11-module.js';
import { formatPkcs11Uri } from './pkcs11-uri.js';
import type { Signer } from './signer.js';

// PKCS#11 3.0 Edwards-curve identifiers; pkcs11js 2.1.7 only ships the 2.40 constants.
export const CKK_EC_EDWARDS = 0x40;
const CKM_EDDSA = 0x1057;
const ED25519_SIGNATURE_BYTES = 64;

export interface Pkcs11TokenOptions {
  /** Path to the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly modulePath: string;
  readonly tokenLabel: string;
  /** User (CKU_USER) PIN. */
  readonly pin: string;
}

/**
 * A logged-in session on one PKCS#11 token, and the Ed25519 signers on it: what the broker's key
 * store and the SDK's pkcs11: signer share. Private keys are only ever referred to by handle.
 *
 * One session serves all operations: pkcs11js' synchronous calls run to completion on the JS
 * thread, so an Init/operation pair (C_SignInit + C_Sign) can never interleave with another one,
 * however many sign() calls are in flight. A call costs tens to hundreds of microseconds.
 */
export class Pkcs11Session {
  readonly #lease: Pkcs11ModuleLease;
  readonly #slot: Handle;
  /** Undefined once closed. */
  #session: Handle | undefined;

  private constructor(
    readonly pkcs11js: Pkcs11Js,
    lease: Pkcs11ModuleLease,
    readonly modulePath: string,
    readonly tokenLabel: string,
    slot: Handle,
    session: Handle,
  ) {
    this.#lease = lease;
    this.#slot = slot;
    this.#session = session;
  }

  static async open(options: Pkcs11TokenOptions): Promise<Pkcs11Session> {
    const { modulePath, tokenLabel, pin } = options;
    const pkcs11js = await loadPkcs11js();
    const lease = await acquirePkcs11Module(modulePath);
    try {
      const slot = findTokenSlot(lease.pkcs11, tokenLabel);
      if (slot === undefined) {
        throw new TesseraError(
          'config_invalid',
          `PKCS#11 module ${modulePath} has no initialised token labelled "${tokenLabel}"` +
            (process.env.SOFTHSM2_CONF ? ` (SOFTHSM2_CONF=${process.env.SOFTHSM2_CONF}).` : '. For SoftHSM2, set SOFTHSM2_CONF to the softhsm2.conf of the token (e.g. <data dir>/softhsm/softhsm2.conf).'),
        );
      }
      const session = lease.pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      try {
        login(pkcs11js, lease.pkcs11, session, tokenLabel, pin);
      } catch (error) {
        lease.pkcs11.C_CloseSession(session);
        throw error;
      }
      return new Pkcs11Session(pkcs11js, lease, modulePath, tokenLabel, slot, session);
    } catch (error) {
      lease.release();
      throw error instanceof TesseraError ? error : pkcs11Error(`opening token "${tokenLabel}"`, error);
    }
  }

  /** Opens the Ed25519 key pair labelled `label`. Throws TesseraError('key_not_found') when absent. */
  findSigner(label: string): Signer {
    return this.run('key lookup', (pkcs11, session) => {
      const byLabel = (objectClass: number): Template => [
        { type: this.pkcs11js.CKA_CLASS, value: objectClass },
        { type: this.pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: this.pkcs11js.CKA_LABEL, value: label },
      ];
      const privateKey = this.findOne(pkcs11, session, byLabel(this.pkcs11js.CKO_PRIVATE_KEY));
      const publicKey = this.findOne(pkcs11, session, byLabel(this.pkcs11js.CKO_PUBLIC_KEY));
      if (privateKey === undefined || publicKey === undefined) {
        throw new TesseraError('key_not_found', `PKCS#11 token "${this.tokenLabel}" has no Ed25519 key pair labelled "${label}".`);
      }
      return this.signer(pkcs11, session, label, privateKey, publicKey);
    });
  }

  /** A Signer on a key pair found or just generated on this session. */
  signer(pkcs11: PKCS11, session: Handle, label: string, privateKey: Handle, publicKey: Handle): Signer {
    const [point] = pkcs11.C_GetAttributeValue(session, publicKey, [{ type: this.pkcs11js.CKA_EC_POINT }]);
    return Object.freeze({
      uri: formatPkcs11Uri({ token: this.tokenLabel, object: label }),
      publicKey: ed25519PublicKey(point?.value),
      sign: async (data: Uint8Array) =>
        this.run('sign', (p11, s) => {
          p11.C_SignInit(s, { mechanism: CKM_EDDSA }, privateKey);
          return p11.C_Sign(s, asBuffer(data), Buffer.alloc(ED25519_SIGNATURE_BYTES));
        }),
    });
  }

  /** At most one object matches: labels are unique in a Tessera token, so two is an error. */
  findOne(pkcs11: PKCS11, session: Handle, template: Template): Handle | undefined {
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

  /** Runs synchronous PKCS#11 calls on the session, mapping failures to TesseraErrors. */
  run<T>(action: string, operation: (pkcs11: PKCS11, session: Handle) => T): T {
    const session = this.#session;
    if (session === undefined) throw new TesseraError('key_store_error', 'The PKCS#11 session is closed.');
    try {
      return operation(this.#lease.pkcs11, session);
    } catch (error) {
      if (error instanceof TesseraError) throw error;
      this.#replaceSession(session);
      throw pkcs11Error(action, error);
    }
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

  /**
   * A failed call may leave an operation active on the session, and PKCS#11 2.40 cannot cancel
   * it; a fresh session keeps later calls working. It opens before the old one closes so the
   * token stays logged in (login state lasts while the application has any session open).
   */
  #replaceSession(broken: Handle): void {
    const pkcs11 = this.#lease.pkcs11;
    try {
      this.#session = pkcs11.C_OpenSession(this.#slot, this.pkcs11js.CKF_SERIAL_SESSION | this.pkcs11js.CKF_RW_SESSION);
      pkcs11.C_CloseSession(broken);
    } catch {
      // The token itself is failing; keep the old session and let the next call report it.
    }
  }
}

function login(pkcs11js: Pkcs11Js, pkcs11: PKCS11, session: Handle, tokenLabel: string, pin: string): void {
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (error) {
    // Login state is per token and process: another session on the same token already logged in.
    if (isPkcs11Error(pkcs11js, error, pkcs11js.CKR_USER_ALREADY_LOGGED_IN)) return;
    const rejected = [pkcs11js.CKR_PIN_INCORRECT, pkcs11js.CKR_PIN_LEN_RANGE, pkcs11js.CKR_PIN_LOCKED, pkcs11js.CKR_PIN_EXPIRED];
    if (rejected.some((code) => isPkcs11Error(pkcs11js, error, code))) {
      throw new TesseraError(
        'config_invalid',
        `PKCS#11 login to token "${tokenLabel}" failed: the token rejected the configured user PIN (${messageOf(error)}).`,
      );
    }
    throw pkcs11Error(`login to token "${tokenLabel}"`, error);
  }
}

/** CKA_EC_POINT is a DER OCTET STRING (`04 20 || key`) per PKCS#11 3.0; some HSMs return the raw key. */
function ed25519PublicKey(point: Buffer | undefined): Uint8Array {
  if (point?.length === 32) return new Uint8Array(point);
  if (point?.length === 34 && point[0] === 0x04 && point[1] === 0x20) return new Uint8Array(point.subarray(2));
  throw new TesseraError('key_store_error', 'PKCS#11 token returned an Ed25519 CKA_EC_POINT in an unknown encoding.');
}

export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
