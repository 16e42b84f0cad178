import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import { keyStoreKindOf, type KeyStores } from '../keys/registry.js';
import { SqlBrokerKeyRepository } from '../store/repositories/broker-keys.js';
import type { Database } from '../store/schema.js';
import { readSetting, writeSetting } from '../store/settings.js';
import { rewrap } from './envelope.js';
import type { WrappingKeys } from './wrapping-keys.js';

export interface WrappingKeyRotation {
  readonly keyUri: string;
  readonly previousKeyUri: string;
  /** backends whose data key was re-wrapped */
  readonly rewrapped: number;
}

/**
 * Replaces the wrapping key: a new one is generated in the same key store, every backend's data
 * key is unwrapped by its old key and wrapped by the new one (the root secrets' ciphertexts are not
 * opened), and the old key is retired: nothing refers to it any more. One transaction, so a broker
 * sealing a new backend meanwhile either waits for it or is re-wrapped by it. The old key is left
 * in the key store (deleting it there is the operator's call, once backups sealed with it are gone).
 */
export async function rotateWrappingKey(
  deps: { db: Kysely<Database>; keyStores: KeyStores; wrappingKeys: WrappingKeys; audit: AuditSink; clock: Clock },
  actor: string,
): Promise<WrappingKeyRotation> {
  const { db, keyStores, wrappingKeys, audit, clock } = deps;
  const previousKeyUri = await readSetting(db, 'wrapping_key_uri');
  if (!previousKeyUri) throw new TesseraError('config_invalid', 'The broker has no wrapping key: run "tessera init" to create it.');
  const store = await keyStores.get(keyStoreKindOf(previousKeyUri));
  const next = await store.createWrappingKey({ label: `tessera-wrapping-${randomBytes(4).toString('hex')}`, tags: { 'tessera:purpose': 'wrapping' } });
  return db.transaction().execute(async (trx) => {
    // Re-read inside the transaction: two concurrent rotations must not both retire the same key.
    if ((await readSetting(trx, 'wrapping_key_uri')) !== previousKeyUri) throw new TesseraError('conflict', 'The wrapping key was rotated meanwhile; try again.');
    await writeSetting(trx, 'wrapping_key_uri', next.uri);
    const rows = await trx.selectFrom('backends').select(['name', 'sealed_secret', 'wrapped_key', 'wrapping_key_uri']).execute();
    const retiredUris = new Set<string>();
    for (const row of rows) {
      const sealed = { ciphertext: row.sealed_secret, wrappedKey: row.wrapped_key, wrappingKeyUri: row.wrapping_key_uri };
      const rewrapped = await rewrap(sealed, await wrappingKeys.get(row.wrapping_key_uri), next);
      await trx.updateTable('backends').set({ wrapped_key: rewrapped.wrappedKey, wrapping_key_uri: next.uri }).where('name', '=', row.name).execute();
      retiredUris.add(row.wrapping_key_uri);
    }
    retiredUris.add(previousKeyUri);
    const now = clock.now();
    const brokerKeys = new SqlBrokerKeyRepository(trx);
    const known = new Set((await brokerKeys.all('wrapping')).map((key) => key.uri));
    for (const uri of retiredUris) {
      if (!known.has(uri)) await brokerKeys.add({ uri, purpose: 'wrapping', kid: null, publicKey: null, createdAt: now, notAfter: now, retiredAt: now });
    }
    await audit.append(
      { actor, action: 'secrets.wrapping_key_rotated', outcome: 'success', details: { key_uri: next.uri, previous_key_uri: previousKeyUri, rewrapped: rows.length } },
      trx,
    );
    for (const uri of retiredUris) {
      await audit.append({ actor, action: 'secrets.wrapping_key_retired', outcome: 'success', details: { key_uri: uri } }, trx);
    }
    return { keyUri: next.uri, previousKeyUri, rewrapped: rows.length };
  });
}
