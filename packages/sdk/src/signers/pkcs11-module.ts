import { realpathSync } from 'node:fs';
import type { Handle, PKCS11 } from 'pkcs11js';
import { TesseraError } from '../errors.js';
import { importOptional } from './optional-dependency.js';

/** The pkcs11js addon (an optional peer dependency), loaded on first use. */
export type Pkcs11Js = typeof import('pkcs11js');

export async function loadPkcs11js(): Promise<Pkcs11Js> {
  return (await importOptional<{ default: Pkcs11Js }>('pkcs11js', 'A pkcs11: key')).default;
}

// A PKCS#11 library can be C_Initialize'd only once per process, so every user (key stores,
// SDK signers, token setup, tests) shares one instance per library and the last one out finalizes.

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

export async function acquirePkcs11Module(modulePath: string): Promise<Pkcs11ModuleLease> {
  const pkcs11js = await loadPkcs11js();
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
      if (!isPkcs11Error(pkcs11js, error, pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
        pkcs11.close();
        throw pkcs11Error(`C_Initialize of ${modulePath}`, error);
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

/** PKCS#11 CK_TOKEN_INFO flag (a constant of the standard; pkcs11js exports it too, once loaded). */
const CKF_TOKEN_INITIALIZED = 0x400;

/** The slot holding the initialised token with this label, if any. */
export function findTokenSlot(pkcs11: PKCS11, tokenLabel: string): Handle | undefined {
  return pkcs11.C_GetSlotList(true).find((slot) => {
    const info = pkcs11.C_GetTokenInfo(slot);
    // Token labels are fixed 32-byte fields, blank padded.
    return (info.flags & CKF_TOKEN_INITIALIZED) !== 0 && info.label.trimEnd() === tokenLabel;
  });
}

export function isPkcs11Error(pkcs11js: Pkcs11Js, error: unknown, code: number): boolean {
  return error instanceof pkcs11js.Pkcs11Error && error.code === code;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function pkcs11Error(action: string, error: unknown): TesseraError {
  return new TesseraError('key_store_error', `PKCS#11 ${action} failed: ${messageOf(error)}`, { cause: error });
}

function canonicalPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
