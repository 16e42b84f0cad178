import type { Command } from 'commander';
import { ttlSeconds } from '@tessera-broker/sdk';
import { rotateIdentityKey } from '../../../provisioner/provision.js';
import { readInitState, writeInitState } from '../../config/config.js';
import { TesseraError } from '../../errors.js';
import type { RotateAuthorityResponse, RotateIdentityKeyResponse, RotateWrappingKeyResponse } from '@tessera-broker/sdk/wire';
import { adminClient, commandConfig, output, withKeyStores } from '../context.js';
import { adminRequest } from '../signed-request.js';

/** A grace or overlap flag: a duration, or 0 for none. */
const optionalPeriod = (text: string | undefined, flag: string) => (text === undefined ? undefined : text === '0' ? 0 : ttlSeconds(text, flag));

const rotatedLines = (rotated: RotateIdentityKeyResponse) =>
  [
    `rotated the key of ${rotated.identity.address} (identity id ${rotated.identity.identity_id}, unchanged)`,
    `new key:       ${rotated.key.key_uri}`,
    `old key:       ${rotated.previous_key.key_uri}`,
    `old key works until ${rotated.previous_key.not_after}; then its proofs are refused (key_retired)`,
  ].join('\n');

/** `tessera identity rotate <address>`: registered on the identity command. */
export function registerIdentityRotate(identity: Command): void {
  identity
    .command('rotate <address>')
    .description("generate a new primary key for an identity in the same key store; the identity id stays and the old key works for the grace period")
    .option('--grace <duration>', 'how long the old key is still accepted, e.g. 10m, or 0 (default 10m)')
    .option('--json', 'print JSON')
    .action(async (address: string, options: { grace?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const grace = optionalPeriod(options.grace, '--grace');
      const rotated = await withKeyStores(config, async (keyStores) => rotateIdentityKey(await adminClient(command, config, keyStores), keyStores, address, grace));
      output(options.json, rotated, () => `${rotatedLines(rotated)}\npoint the agent's node at the new key: TESSERA_KEY=${rotated.key.key_uri} (or tessera enroll's --key)`);
    });
}

/** Rotation of the broker's own keys and of the admin key (docs/PROTOCOL.md §4.6). */
export function registerRotationCommands(program: Command): void {
  program
    .command('authority')
    .description("the broker's authority key (signs credentials and audit checkpoints)")
    .command('rotate')
    .description('generate a new authority key in the same key store; JWKS publishes both keys during the overlap')
    .option('--overlap <duration>', 'how long the old key stays in JWKS, e.g. 24h, or 0 (default 24h)')
    .option('--json', 'print JSON')
    .action(async (options: { overlap?: string; json?: boolean }, command: Command) => {
      const overlap = optionalPeriod(options.overlap, '--overlap');
      const rotated = await adminRequest<RotateAuthorityResponse>(command, 'POST', '/v1/admin/authority/rotate', overlap === undefined ? {} : { overlap_seconds: overlap });
      output(options.json, rotated, () =>
        [
          `authority key rotated: kid ${rotated.kid} (${rotated.key_uri})`,
          `old kid ${rotated.previous_kid} stays in JWKS until ${rotated.previous_not_after}`,
          'agents get credentials under the new key from POST /v1/credentials',
        ].join('\n'),
      );
    });

  program
    .command('admin')
    .description('the admin identity of this data dir')
    .command('rotate-key')
    .description('generate a new admin key in the same key store and use it from this data dir on')
    .option('--grace <duration>', 'how long the old admin key is still accepted, e.g. 10m, or 0 (default 10m)')
    .option('--json', 'print JSON')
    .action(async (options: { grace?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const grace = optionalPeriod(options.grace, '--grace');
      const rotated = await withKeyStores(config, async (keyStores) => {
        const admin = await adminClient(command, config, keyStores);
        const me = await admin.request<{ address: string; role: string }>('GET', '/v1/whoami');
        if (me.role !== 'admin') throw new TesseraError('forbidden', `${me.address} is not an admin identity.`);
        return rotateIdentityKey(admin, keyStores, me.address, grace);
      });
      // Admin commands from this data dir sign with the new key from now on.
      writeInitState(config.dataDir, { ...readInitState(config.dataDir), adminKeyUri: rotated.key.key_uri });
      const pinned = process.env.TESSERA_ADMIN_KEY ? `\nTESSERA_ADMIN_KEY is set: change it to ${rotated.key.key_uri}` : '';
      output(options.json, rotated, () => `${rotatedLines(rotated)}\nthis data dir now signs admin commands with the new key${pinned}`);
    });

  program
    .command('secrets')
    .description('the wrapping key that seals upstream root secrets')
    .command('rotate-wrapping-key')
    .description('generate a new wrapping key and re-wrap every backend data key under it (root secrets are not decrypted); the old key is retired')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const rotated = await adminRequest<RotateWrappingKeyResponse>(command, 'POST', '/v1/admin/wrapping-key/rotate');
      output(options.json, rotated, () =>
        [`wrapping key rotated: ${rotated.key_uri}`, `data keys re-wrapped: ${rotated.rewrapped}`, `retired: ${rotated.previous_key_uri} (still in the key store; nothing refers to it)`].join('\n'),
      );
    });
}
