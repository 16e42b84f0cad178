import { existsSync, readFileSync, statSync } from 'node:fs';
import { TesseraError } from '../errors.js';

const MODULE_PATHS = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

/** The first SoftHSM2 library found in the usual install locations: the default PKCS#11 module. */
export function findModulePath(): string {
  const found = MODULE_PATHS.find((path) => existsSync(path));
  if (found === undefined) {
    throw new TesseraError(
      'config_invalid',
      `SoftHSM2 is not installed (looked for ${MODULE_PATHS.join(', ')}). ` +
        'Install it with `apt-get install -y softhsm2` (Debian) or `brew install softhsm` (macOS), ' +
        'or set TESSERA_PKCS11_MODULE to the path of another PKCS#11 module.',
    );
  }
  return found;
}

/** Where a PKCS#11 token is and how to log in (the SDK's Pkcs11Settings, the broker's TESSERA_PKCS11_* config). */
interface TokenSettings {
  readonly module?: string;
  readonly pin?: string;
  readonly pinFile?: string;
}

/** The PKCS#11 library to load: the one named, else SoftHSM2 (findModulePath). */
export function modulePathOf(settings: TokenSettings): string {
  return settings.module || findModulePath();
}

/** The user PIN: the one given, else the PIN file's; undefined when neither is set (an empty value counts as unset). */
export function pinOf(settings: TokenSettings): string | undefined {
  return settings.pin || (settings.pinFile ? readPinFile(settings.pinFile) : undefined);
}

/** Reads a PIN file, refusing one that group or others can read. Trailing newline is dropped. */
export function readPinFile(path: string): string {
  let mode: number;
  let content: string;
  try {
    mode = statSync(path).mode;
    content = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TesseraError('config_invalid', `Cannot read PIN file ${path}: ${(error as Error).message}`, { cause: error });
  }
  if ((mode & 0o077) !== 0) {
    throw new TesseraError(
      'config_invalid',
      `PIN file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); run \`chmod 600 ${path}\`.`,
    );
  }
  const pin = content.replace(/\r?\n$/, '');
  if (pin === '') throw new TesseraError('config_invalid', `PIN file ${path} is empty.`);
  return pin;
}
