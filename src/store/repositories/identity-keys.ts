import type { Kysely, Selectable } from 'kysely';
import { base64url } from '../../crypto/encoding.js';
import type { IdentityKey } from '../../identity/identity.js';
import type { Database, IdentityKeyTable } from '../schema.js';

/** Every key an identity has had (migration 0008-key-rotation). */
export interface IdentityKeyRepository {
  add(key: IdentityKey): Promise<void>;
  /** The identity whose key has this thumbprint; a key id never moves to another identity. */
  identityOf(keyId: string): Promise<string | undefined>;
  /** Oldest first. */
  forIdentity(identityId: string): Promise<IdentityKey[]>;
  /**
   * Supersedes the key if it is still current (no grace end yet): proofs it signs after `notAfter`
   * are refused. False if a rotation on another broker superseded it first (compare-and-set: two
   * rotations from the same key must not leave two current keys).
   */
  supersede(keyId: string, notAfter: number): Promise<boolean>;
  /** Superseded keys past their grace whose retirement is not yet recorded. */
  retirable(now: number): Promise<IdentityKey[]>;
  /** Records the retirement once: false if another broker got there first. */
  markRetired(keyId: string, at: number): Promise<boolean>;
  /** Keyset page by key id, for the audit export. */
  page(afterKeyId: string, limit: number): Promise<IdentityKey[]>;
}

function fromRow(row: Selectable<IdentityKeyTable>): IdentityKey {
  return {
    keyId: row.key_id,
    identityId: row.identity_id,
    publicKey: base64url.decode(row.public_key),
    keyUri: row.key_uri,
    createdAt: Number(row.created_at),
    notAfter: row.not_after === null ? null : Number(row.not_after),
    retiredAt: row.retired_at === null ? null : Number(row.retired_at),
  };
}

export class SqlIdentityKeyRepository implements IdentityKeyRepository {
  constructor(
    private readonly db: Kysely<Database>,
    /** Store.reader for the authenticator's lookups outside a transaction */
    private readonly reader: Kysely<Database> = db,
  ) {}

  async add(key: IdentityKey): Promise<void> {
    await this.db
      .insertInto('identity_keys')
      .values({
        key_id: key.keyId,
        identity_id: key.identityId,
        public_key: base64url.encode(key.publicKey),
        key_uri: key.keyUri,
        created_at: key.createdAt,
        not_after: key.notAfter,
        retired_at: key.retiredAt,
      })
      .execute();
  }

  async identityOf(keyId: string): Promise<string | undefined> {
    return (await this.reader.selectFrom('identity_keys').select('identity_id').where('key_id', '=', keyId).executeTakeFirst())?.identity_id;
  }

  async forIdentity(identityId: string): Promise<IdentityKey[]> {
    const rows = await this.reader.selectFrom('identity_keys').selectAll().where('identity_id', '=', identityId).orderBy('created_at').orderBy('key_id').execute();
    return rows.map(fromRow);
  }

  async supersede(keyId: string, notAfter: number): Promise<boolean> {
    const result = await this.db.updateTable('identity_keys').set({ not_after: notAfter }).where('key_id', '=', keyId).where('not_after', 'is', null).executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  async retirable(now: number): Promise<IdentityKey[]> {
    const rows = await this.db.selectFrom('identity_keys').selectAll().where('not_after', '<=', now).where('retired_at', 'is', null).orderBy('not_after').orderBy('key_id').execute();
    return rows.map(fromRow);
  }

  async markRetired(keyId: string, at: number): Promise<boolean> {
    const result = await this.db.updateTable('identity_keys').set({ retired_at: at }).where('key_id', '=', keyId).where('retired_at', 'is', null).executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  async page(afterKeyId: string, limit: number): Promise<IdentityKey[]> {
    const rows = await this.db.selectFrom('identity_keys').selectAll().where('key_id', '>', afterKeyId).orderBy('key_id').limit(limit).execute();
    return rows.map(fromRow);
  }
}
