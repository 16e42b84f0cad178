import { TesseraError } from '../errors.js';
import { openKmsSigner } from './kms-signer.js';
import { openPkcs11Signer, type Pkcs11Settings, pkcs11SettingsFromEnv } from './pkcs11-signer.js';
import type { OpenedSigner } from './signer.js';

export interface KeySettings {
  /** For pkcs11: keys; unset fields come from TESSERA_PKCS11_MODULE, TESSERA_PKCS11_PIN, TESSERA_PKCS11_PIN_FILE. */
  readonly pkcs11?: Pkcs11Settings;
}

/** The signer for a key URI: `pkcs11:token=...;object=...` (RFC 7512) or `aws-kms:<key id or ARN>`. */
export function openSigner(uri: string, settings: KeySettings = {}): Promise<OpenedSigner> {
  if (/^pkcs11:/i.test(uri)) return openPkcs11Signer(uri, pkcs11SettingsFromEnv(settings.pkcs11));
  if (uri.startsWith('aws-kms:')) return openKmsSigner(uri);
  throw new TesseraError('config_invalid', `Unsupported key URI "${uri}": expected pkcs11:token=...;object=... or aws-kms:<key id>.`);
}
