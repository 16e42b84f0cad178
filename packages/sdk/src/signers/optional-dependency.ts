import { TesseraError } from '../errors.js';

const loaded = new Map<string, Promise<unknown>>();

/**
 * Imports a peer dependency only when a key URI needs it, so an agent using KMS never loads the
 * native PKCS#11 addon and one using a token never loads the AWS SDK. Loaded once per process (a
 * dynamic import resolves the module again each time); a failure is not kept, so installing the
 * package and trying again works.
 */
export function importOptional<T>(name: string, needed: string): Promise<T> {
  let module = loaded.get(name);
  if (module === undefined) {
    module = import(name).catch((error: unknown) => {
      loaded.delete(name);
      if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
      throw new TesseraError('config_invalid', `${needed} needs the package "${name}": run \`npm install ${name}\`.`, { cause: error });
    });
    loaded.set(name, module);
  }
  return module as Promise<T>;
}
