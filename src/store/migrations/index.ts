import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import type { SqlDialect } from '../database.js';
import { identities } from './0001-identities.js';
import { leases } from './0002-leases.js';
import { auditChain } from './0003-audit-chain.js';
import { proxyLeases } from './0004-proxy-leases.js';
import { reviewSessions } from './0005-review-sessions.js';
import { changes } from './0006-changes.js';
import { sessions } from './0007-sessions.js';
import { keyRotation } from './0008-key-rotation.js';
import { delegations } from './0009-delegations.js';
import { trustedIssuers } from './0010-trusted-issuers.js';
import { changeKinds } from './0011-change-kinds.js';
import { leanHotIndexes } from './0012-lean-hot-indexes.js';
import { grantChanges } from './0013-grant-changes.js';

/**
 * Migrations are code, bundled with the broker, one file each; every one must run unchanged on
 * every dialect. They are frozen: a migration imports nothing of the live broker but types, so
 * changing the broker cannot change what an old migration does. Add a file and register it here, in order.
 */
function migrations(dialect: SqlDialect): Record<string, Migration> {
  return {
    '0001-identities': identities(dialect),
    '0002-leases': leases(),
    '0003-audit-chain': auditChain(),
    '0004-proxy-leases': proxyLeases(),
    '0005-review-sessions': reviewSessions(),
    '0006-changes': changes(dialect),
    '0007-sessions': sessions(dialect),
    '0008-key-rotation': keyRotation(dialect),
    '0009-delegations': delegations(),
    '0010-trusted-issuers': trustedIssuers(),
    '0011-change-kinds': changeKinds(dialect),
    '0012-lean-hot-indexes': leanHotIndexes(),
    '0013-grant-changes': grantChanges(dialect),
  };
}

export function migrator(db: Kysely<unknown>, dialect: SqlDialect): Migrator {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  return new Migrator({ db, provider });
}

export async function migrateToLatest(db: Kysely<unknown>, dialect: SqlDialect): Promise<void> {
  const { error, results } = await migrator(db, dialect).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`, { cause: error });
  }
}
