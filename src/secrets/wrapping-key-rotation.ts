import { randomBytes } from 'node:crypto';
import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import { keyStoreKindOf, type KeyStores } from '../keys/registry.js';
import type { Store } from '../store/database.js';
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
  deps: { store: Pick<Store, 'repos' | 'transaction'>; keyStores: KeyStores; wrappingKeys: WrappingKeys; audit: AuditSink; clock: Clock },
  actor: string,
): Promise<WrappingKeyRotation> {
  const { store, keyStores, wrappingKeys, audit, clock } = deps;
  const previousKeyUri = await store.repos.settings.get('wrapping_key_uri');
  if (!previousKeyUri) throw new TesseraError('config_invalid', 'The broker has no wrapping key: run "tessera init" to create it.');
  const keyStore = await keyStores.get(keyStoreKindOf(previousKeyUri));
  const next = await keyStore.createWrappingKey({ label: `tessera-wrapping-${randomBytes(4).toString('hex')}`, tags: { 'tessera:purpose': 'wrapping' } });
  return store.transaction(async (repos) => {
    // Re-read inside the transaction: two concurrent rotations must not both retire the same key.
    if ((await repos.settings.get('wrapping_key_uri')) !== previousKeyUri) throw new TesseraError('conflict', 'The wrapping key was rotated meanwhile; try again.');
    await repos.settings.set('wrapping_key_uri', next.uri);
    const rows = await repos.sealedSecrets.all();
    const retiredUris = new Set<string>();
    for (const row of rows) {
      const rewrapped = await rewrap(row.sealed, await wrappingKeys.get(row.sealed.wrappingKeyUri), next);
      await repos.sealedSecrets.rewrap(row.backend, rewrapped);
      retiredUris.add(row.sealed.wrappingKeyUri);
    }
    retiredUris.add(previousKeyUri);
    const now = clock.now();
    const brokerKeys = repos.brokerKeys;
    const known = new Set((await brokerKeys.all('wrapping')).map((key) => key.uri));
    for (const uri of retiredUris) {
      if (!known.has(uri)) await brokerKeys.add({ uri, purpose: 'wrapping', kid: null, publicKey: null, createdAt: now, notAfter: now, retiredAt: now });
    }
    await audit.append(
      { actor, action: 'secrets.wrapping_key_rotated', outcome: 'success', details: { key_uri: next.uri, previous_key_uri: previousKeyUri, rewrapped: rows.length } },
      repos,
    );
    for (const uri of retiredUris) {
      await audit.append({ actor, action: 'secrets.wrapping_key_retired', outcome: 'success', details: { key_uri: uri } }, repos);
    }
    return { keyUri: next.uri, previousKeyUri, rewrapped: rows.length };
  });
}
