import { TesseraError } from '../errors.js';
import { Pkcs11Session } from './pkcs11-session.js';
import { modulePathOf, pinOf } from './pkcs11-settings.js';
import { parsePkcs11Uri } from './pkcs11-uri.js';
import type { OpenedSigner } from './signer.js';

/** Where a pkcs11: key's token is and how to log in; the token label comes from the URI. */
export interface Pkcs11Settings {
  /** Path of the PKCS#11 library. Default: TESSERA_PKCS11_MODULE, else SoftHSM2 where it is usually installed. */
  readonly module?: string;
  /** The token's user PIN. Default: TESSERA_PKCS11_PIN. */
  readonly pin?: string;
  /** A 0600 file holding the PIN. Default: TESSERA_PKCS11_PIN_FILE. */
  readonly pinFile?: string;
}

/** Settings not given are taken from the environment. */
export function pkcs11SettingsFromEnv(settings: Pkcs11Settings = {}, env: NodeJS.ProcessEnv = process.env): Pkcs11Settings {
  const pick = (value: string | undefined, name: string) => value ?? (env[name] || undefined);
  return { module: pick(settings.module, 'TESSERA_PKCS11_MODULE'), pin: pick(settings.pin, 'TESSERA_PKCS11_PIN'), pinFile: pick(settings.pinFile, 'TESSERA_PKCS11_PIN_FILE') };
}

/** Opens the Ed25519 key pair a `pkcs11:token=...;object=...` URI names, on its own logged-in session. */
export async function openPkcs11Signer(uri: string, settings: Pkcs11Settings): Promise<OpenedSigner> {
  const { token, object, type } = parsePkcs11Uri(uri);
  if (type !== undefined && type !== 'private') throw new TesseraError('key_not_found', `PKCS#11 URI ${uri} names a ${type} object, not a private key.`);
  const pin = pinOf(settings);
  if (pin === undefined) {
    throw new TesseraError(
      'config_invalid',
      `The key ${uri} is on PKCS#11 token "${token}", which needs its user PIN: set TESSERA_PKCS11_PIN, or TESSERA_PKCS11_PIN_FILE to a 0600 file holding it.`,
    );
  }
  const session = await Pkcs11Session.open({ modulePath: modulePathOf(settings), tokenLabel: token, pin });
  try {
    return { signer: session.findSigner(object), close: () => session.close() };
  } catch (error) {
    await session.close();
    throw error;
  }
}
