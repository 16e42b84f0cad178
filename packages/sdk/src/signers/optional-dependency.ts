import { TesseraError } from '../errors.js';

/**
 * Imports a peer dependency only when a key URI needs it, so an agent using KMS never loads the
 * native PKCS#11 addon and one using a token never loads the AWS SDK.
 */
export async function importOptional<T>(name: string, needed: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new TesseraError('config_invalid', `${needed} needs the package "${name}": run \`npm install ${name}\`.`, { cause: error });
  }
}
