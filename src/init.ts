import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseAuditLog } from './audit/audit-log.js';
import { systemClock } from './clock.js';
import { type Config, type InitState, readInitState, writeInitState } from './config/config.js';
import { IdentityService } from './identity/identities.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { KeyStores } from './keys/registry.js';
import { ensureSoftHsmToken } from './keys/softhsm.js';
import { openStore } from './store/database.js';

export const ADMIN_ADDRESS = 'admin@tessera.local';

export interface InitReport {
  readonly dataDir: string;
  readonly databaseUrl: string;
  readonly keystore: Config['keystore'];
  readonly authorityKeyUri: string;
  readonly adminAddress: string;
  readonly adminKeyUri: string;
  /** What this run created; empty when everything already existed. */
  readonly created: string[];
}

/**
 * `tessera init`: data directory, database, SoftHSM2 token (embedded default), the broker's authority
 * key and an admin identity whose key sits in the same key store. Idempotent: a second run creates
 * nothing and reports what is there.
 */
export async function initialize(config: Config): Promise<InitReport> {
  const created: string[] = [];
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode only applies to a directory it creates; tighten one that already existed.
  chmodSync(config.dataDir, 0o700);
  const state: InitState = { ...readInitState(config.dataDir), keystore: config.keystore };
  let settings = config;

  const usesEmbeddedToken = config.keystore === 'pkcs11' && !config.pkcs11.module && !config.pkcs11.pin && !config.pkcs11.pinFile;
  if (usesEmbeddedToken) {
    const token = await ensureSoftHsmToken({ dir: join(config.dataDir, 'softhsm'), tokenLabel: config.pkcs11.token });
    state.pkcs11 = { module: token.modulePath, token: token.tokenLabel, pinFile: token.pinFile };
    settings = { ...config, pkcs11: { ...config.pkcs11, module: token.modulePath, pinFile: token.pinFile } };
  }

  const store = await openStore(config.databaseUrl);
  const keyStores = new KeyStores(settings);
  try {
    const keyStore = await keyStores.get(config.keystore);
    const suffix = () => randomBytes(4).toString('hex');

    let authorityKeyUri = await store.repos.settings.get('authority_key_uri');
    if (!authorityKeyUri) {
      const signer = await keyStore.createSigningKey({ label: `tessera-authority-${suffix()}`, tags: { 'tessera:purpose': 'authority' } });
      authorityKeyUri = signer.uri;
      await store.repos.settings.set('authority_key_uri', authorityKeyUri);
      created.push('authority key');
    }

    // Wraps the data keys that seal upstream root secrets (src/secrets/envelope.ts).
    if (!(await store.repos.settings.get('wrapping_key_uri'))) {
      const wrappingKey = await keyStore.createWrappingKey({ label: `tessera-wrapping-${suffix()}`, tags: { 'tessera:purpose': 'wrapping' } });
      await store.repos.settings.set('wrapping_key_uri', wrappingKey.uri);
      created.push('wrapping key');
    }

    const identities = new IdentityService(store, new DatabaseAuditLog(store.repos, systemClock), systemClock, {
      defaultTtlMs: config.ticketTtlMs,
      maxTtlMs: config.ticketMaxTtlMs,
      failures: { max: config.ticketFailureLimit, windowMs: config.ticketFailureWindowMs },
    });
    let admin = await identities.findByAddress(ADMIN_ADDRESS);
    if (!admin) {
      const signer = await keyStore.createSigningKey({ label: `tessera-admin-${suffix()}`, tags: { 'tessera:address': ADMIN_ADDRESS } });
      admin = await identities.register(
        { address: ADMIN_ADDRESS, publicKey: signer.publicKey, keyUri: signer.uri, role: 'admin', status: 'active' },
        null,
      );
      created.push('admin identity');
    }
    // The admin key must be usable from this machine: check it opens and matches.
    const adminSigner = await keyStores.signer(admin.keyUri);
    if ((await keyThumbprint(adminSigner.publicKey)) !== admin.id) throw new Error(`admin key ${admin.keyUri} does not match ${ADMIN_ADDRESS}`);

    state.adminKeyUri = admin.keyUri;
    writeInitState(config.dataDir, state);

    return {
      dataDir: config.dataDir,
      databaseUrl: config.databaseUrl,
      keystore: config.keystore,
      authorityKeyUri,
      adminAddress: ADMIN_ADDRESS,
      adminKeyUri: admin.keyUri,
      created,
    };
  } finally {
    await keyStores.close();
    await store.close();
  }
}
