import type { Command } from 'commander';
import { adminRequest, asIdentity } from './signed-request.js';

export const REVIEWER_KEY_FLAGS = '--key <uri>';
export const REVIEWER_KEY_HELP = 'sign as this reviewer (or admin) key: pkcs11:... or aws-kms:... (default: the admin key of the data dir)';

/** A request signed by the reviewer key given with --key, else by this data dir's admin identity. */
export function reviewerRequest<T>(command: Command, keyUri: string | undefined, method: string, path: string, body?: unknown): Promise<T> {
  return keyUri === undefined ? adminRequest<T>(command, method, path, body) : asIdentity(command, keyUri, (client) => client.request<T>(method, path, body));
}
