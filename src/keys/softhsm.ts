import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { acquirePkcs11Module, findModulePath, findTokenSlot, readPinFile } from '@tessera-broker/sdk/signers';
import { TesseraError } from '../errors.js';

/** PKCS#11 token labels are 32-byte, blank-padded fields. */
const TOKEN_LABEL_BYTES = 32;

export interface SoftHsmToken {
  readonly confPath: string;
  readonly modulePath: string;
  readonly tokenLabel: string;
  /** 0600 file holding the user PIN. */
  readonly pinFile: string;
}

/**
 * Sets up the embedded-default SoftHSM2 token under `dir` (idempotent):
 * `tokens/` (token files), `softhsm2.conf`, and, the first time, a token initialised in-process
 * with random user and SO PINs stored in `user.pin` and `so.pin` (0600, directory 0700).
 *
 * SoftHSM reads SOFTHSM2_CONF once, at C_Initialize: this sets it when unset, and must therefore
 * run before anything else in the process loads the SoftHSM module.
 */
export async function ensureSoftHsmToken(options: { dir: string; tokenLabel: string; modulePath?: string }): Promise<SoftHsmToken> {
  const { tokenLabel } = options;
  if (tokenLabel === '' || Buffer.byteLength(tokenLabel) > TOKEN_LABEL_BYTES) {
    throw new TesseraError('config_invalid', `PKCS#11 token label "${tokenLabel}" must be 1 to ${TOKEN_LABEL_BYTES} bytes long.`);
  }
  const dir = resolve(options.dir);
  const tokenDir = join(dir, 'tokens');
  const confPath = join(dir, 'softhsm2.conf');
  const pinFile = join(dir, 'user.pin');
  const soPinFile = join(dir, 'so.pin');

  useSoftHsmConf(confPath);
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await writeFile(confPath, softHsmConf(tokenDir));

  const modulePath = options.modulePath ?? findModulePath();
  const lease = await acquirePkcs11Module(modulePath);
  try {
    if (findTokenSlot(lease.pkcs11, tokenLabel) === undefined) {
      // Reuse PINs left by an attempt that stopped before the token existed; never replace the
      // PINs of a token that does exist.
      const pins = existsSync(pinFile) && existsSync(soPinFile)
        ? { user: readPinFile(pinFile), so: readPinFile(soPinFile) }
        : { user: randomPin(), so: randomPin() };
      await writeSecretFile(soPinFile, pins.so);
      await writeSecretFile(pinFile, pins.user);
      initToken(lease.pkcs11, tokenLabel, pins);
    } else {
      readPinFile(pinFile);
    }
  } catch (error) {
    if (error instanceof TesseraError) throw error;
    throw new TesseraError('key_store_error', `Initialising SoftHSM2 token "${tokenLabel}" failed: ${(error as Error).message}`, { cause: error });
  } finally {
    lease.release();
  }
  return { confPath, modulePath, tokenLabel, pinFile };
}

function softHsmConf(tokenDir: string): string {
  return [
    '# Written by Tessera for its embedded SoftHSM2 token.',
    `directories.tokendir = ${tokenDir}`,
    'objectstore.backend = file',
    'log.level = ERROR',
    '',
  ].join('\n');
}

function useSoftHsmConf(confPath: string): void {
  const current = process.env.SOFTHSM2_CONF;
  if (current === undefined || current === '') {
    process.env.SOFTHSM2_CONF = confPath;
  } else if (resolve(current) !== confPath) {
    throw new TesseraError(
      'config_invalid',
      `SOFTHSM2_CONF is set to ${current}, but the embedded token needs ${confPath} (SoftHSM reads one configuration per process). ` +
        'Unset SOFTHSM2_CONF, or configure the PKCS#11 module, token and PIN explicitly.',
    );
  }
}

/**
 * C_InitToken on SoftHSM's free slot, then C_InitPIN as SO: done in-process so the PINs never
 * appear in a command line (softhsm2-util only takes them as arguments or from a terminal).
 */
function initToken(pkcs11: PKCS11, tokenLabel: string, pins: { user: string; so: string }): void {
  const free = pkcs11.C_GetSlotList(true).find((slot) => (pkcs11.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
  if (free === undefined) throw new TesseraError('key_store_error', 'SoftHSM2 offers no free slot to initialise a token in.');
  // The native call reads a full 32-byte label, so it must be padded here.
  pkcs11.C_InitToken(free, pins.so, padLabel(tokenLabel));
  // SoftHSM moves the new token to a slot of its own; look it up again.
  const slot = findTokenSlot(pkcs11, tokenLabel);
  if (slot === undefined) throw new TesseraError('key_store_error', `SoftHSM2 token "${tokenLabel}" vanished after initialisation.`);
  const session = pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_SO, pins.so);
    pkcs11.C_InitPIN(session, pins.user);
    pkcs11.C_Logout(session);
  } finally {
    pkcs11.C_CloseSession(session);
  }
}

function padLabel(label: string): string {
  return label + ' '.repeat(TOKEN_LABEL_BYTES - Buffer.byteLength(label));
}

function randomPin(): string {
  return randomBytes(24).toString('base64url');
}

async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFile(path, `${content}\n`, { mode: 0o600 });
  // `mode` only applies when the file is created.
  await chmod(path, 0o600);
}
