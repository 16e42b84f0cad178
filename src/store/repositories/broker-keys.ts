import type { Kysely, Selectable } from 'kysely';
import type { BrokerKeyPurpose, BrokerKeyTable, Database } from '../schema.js';

export type { BrokerKeyPurpose };

/** A superseded authority or wrapping key (the current ones are settings). */
export interface RetiringBrokerKey {
  readonly uri: string;
  readonly purpose: BrokerKeyPurpose;
  /** authority keys: thumbprint and base64url public key, for JWKS */
  readonly kid: string | null;
  readonly publicKey: string | null;
  readonly createdAt: number;
  /** authority keys stay in JWKS until then */
  readonly notAfter: number;
  readonly retiredAt: number | null;
}

/**
 * Listings are oldest first; keys superseded in the same millisecond (a wrapping-key rotation
 * records all it finds at once) come by uri, so that every dialect gives one order.
 */
export interface BrokerKeyRepository {
  add(key: RetiringBrokerKey): Promise<void>;
  /** Superseded keys of `purpose` still within their overlap at `now`. */
  overlapping(purpose: BrokerKeyPurpose, now: number): Promise<RetiringBrokerKey[]>;
  /** Every superseded key of `purpose`, oldest first (checkpoints signed by any of them still verify). */
  all(purpose: BrokerKeyPurpose): Promise<RetiringBrokerKey[]>;
  retirable(now: number): Promise<RetiringBrokerKey[]>;
  /** Records the retirement once: false if another broker got there first. */
  markRetired(uri: string, at: number): Promise<boolean>;
}

function fromRow(row: Selectable<BrokerKeyTable>): RetiringBrokerKey {
  return {
    uri: row.uri,
    purpose: row.purpose,
    kid: row.kid,
    publicKey: row.public_key,
    createdAt: Number(row.created_at),
    notAfter: Number(row.not_after),
    retiredAt: row.retired_at === null ? null : Number(row.retired_at),
  };
}

export class SqlBrokerKeyRepository implements BrokerKeyRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async add(key: RetiringBrokerKey): Promise<void> {
    await this.db
      .insertInto('broker_keys')
      .values({ uri: key.uri, purpose: key.purpose, kid: key.kid, public_key: key.publicKey, created_at: key.createdAt, not_after: key.notAfter, retired_at: key.retiredAt })
      .execute();
  }

  async overlapping(purpose: BrokerKeyPurpose, now: number): Promise<RetiringBrokerKey[]> {
    const rows = await this.db.selectFrom('broker_keys').selectAll().where('purpose', '=', purpose).where('not_after', '>', now).orderBy('created_at').orderBy('uri').execute();
    return rows.map(fromRow);
  }

  async all(purpose: BrokerKeyPurpose): Promise<RetiringBrokerKey[]> {
    const rows = await this.db.selectFrom('broker_keys').selectAll().where('purpose', '=', purpose).orderBy('created_at').orderBy('uri').execute();
    return rows.map(fromRow);
  }

  async retirable(now: number): Promise<RetiringBrokerKey[]> {
    const rows = await this.db.selectFrom('broker_keys').selectAll().where('not_after', '<=', now).where('retired_at', 'is', null).orderBy('not_after').orderBy('uri').execute();
    return rows.map(fromRow);
  }

  async markRetired(uri: string, at: number): Promise<boolean> {
    const result = await this.db.updateTable('broker_keys').set({ retired_at: at }).where('uri', '=', uri).where('retired_at', 'is', null).executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }
}
