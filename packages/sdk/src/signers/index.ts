/** Key store internals the broker shares with the SDK (one implementation of PKCS#11 sessions and KMS signing). */
export { ED25519_KEY_SPEC, type KmsApi, kmsCall, kmsKeyIdOf, kmsSigner, KMS_URI_PREFIX, loadKmsSdk } from './kms-signer.js';
export { acquirePkcs11Module, findTokenSlot, loadPkcs11js, type Pkcs11Js, type Pkcs11ModuleLease } from './pkcs11-module.js';
export { asBuffer, CKK_EC_EDWARDS, Pkcs11Session, type Pkcs11TokenOptions } from './pkcs11-session.js';
export { findModulePath, modulePathOf, pinOf, readPinFile } from './pkcs11-settings.js';
export { formatPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from './pkcs11-uri.js';
export { type KeySettings, openSigner } from './open-signer.js';
export type { OpenedSigner, Signer } from './signer.js';
