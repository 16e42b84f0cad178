import type { Kysely, Selectable } from 'kysely';
import { base64url } from '../../crypto/encoding.js';
import type { Identity, IdentityRole, IdentityStatus } from '../../identity/identity.js';
import { precompiled } from '../precompiled.js';
import type { Database, IdentityTable } from '../schema.js';

/** Identities: agents, admins and reviewers, each named by the thumbprint of its key. */
export interface IdentityRepository {
  /** The hot-path lookup of every authenticated request (Store.reader outside a transaction). */
  findById(id: string): Promise<Identity | undefined>;
  /** The identities with these ids that exist, by id (a delegation chain's links name theirs by id). */
  findByIds(ids: readonly string[]): Promise<Map<string, Identity>>;
  findByAddress(address: string): Promise<Identity | undefined>;
  /** An identity holding `address` or `id`, whichever exists (both are unique). */
  findByAddressOrId(address: string, id: string): Promise<Identity | undefined>;
  /** The identity if it is active and holds one of `roles`. */
  findActive(id: string, roles: readonly IdentityRole[]): Promise<Identity | undefined>;
  /** Ordered by creation time, then address. */
  list(filter?: { status?: IdentityStatus; role?: IdentityRole }): Promise<Identity[]>;
  /** Addresses by id, for the ids that exist. */
  addresses(ids: readonly string[]): Promise<Map<string, string>>;
  activeAdminAddresses(): Promise<string[]>;
  insert(identity: Identity, createdBy: string | null): Promise<void>;
  /** Marks it enrolled unless it is revoked; the updated identity, or undefined if it was revoked. */
  activate(id: string, at: number): Promise<Identity | undefined>;
  /** Makes `key` the identity's current key (key rotation); the updated identity. */
  setCurrentKey(id: string, key: { publicKey: Uint8Array; keyUri: string }): Promise<Identity>;
  /** Suspends it if it is active (a suspected clone, src/sessions/); whether it changed. */
  suspend(id: string): Promise<boolean>;
  /** Makes a suspended identity active again; the updated identity, or undefined if it was not suspended. */
  reinstate(address: string): Promise<Identity | undefined>;
  /** Revokes it unless it already is; the updated identity, or undefined if none was changed. */
  revoke(address: string, revocation: { at: number; by: string; reason: string }): Promise<Identity | undefined>;
}

// The lookup every authenticated request runs, compiled once rather than rebuilt per request.
const identityById = precompiled<Selectable<IdentityTable>>((db, id: string) => db.selectFrom('identities').selectAll().where('id', '=', id), ['kid']);

export class SqlIdentityRepository implements IdentityRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly reader: Kysely<Database>,
  ) {}

  async findById(id: string): Promise<Identity | undefined> {
    const [row] = (await identityById(this.reader, [id])).rows;
    return row && identityFromRow(row);
  }

  async findByIds(ids: readonly string[]): Promise<Map<string, Identity>> {
    if (ids.length === 0) return new Map();
    const rows = await this.reader.selectFrom('identities').selectAll().where('id', 'in', [...new Set(ids)]).execute();
    return new Map(rows.map((row) => [row.id, identityFromRow(row)]));
  }

  async findByAddress(address: string): Promise<Identity | undefined> {
    const row = await this.db.selectFrom('identities').selectAll().where('address', '=', address).executeTakeFirst();
    return row && identityFromRow(row);
  }

  async findByAddressOrId(address: string, id: string): Promise<Identity | undefined> {
    const row = await this.db
      .selectFrom('identities')
      .selectAll()
      .where((eb) => eb.or([eb('address', '=', address), eb('id', '=', id)]))
      .executeTakeFirst();
    return row && identityFromRow(row);
  }

  async findActive(id: string, roles: readonly IdentityRole[]): Promise<Identity | undefined> {
    if (roles.length === 0) return undefined;
    const row = await this.db.selectFrom('identities').selectAll().where('id', '=', id).where('status', '=', 'active').where('role', 'in', roles).executeTakeFirst();
    return row && identityFromRow(row);
  }

  async list(filter: { status?: IdentityStatus; role?: IdentityRole } = {}): Promise<Identity[]> {
    let query = this.db.selectFrom('identities').selectAll().orderBy('created_at').orderBy('address');
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.role) query = query.where('role', '=', filter.role);
    return (await query.execute()).map(identityFromRow);
  }

  async addresses(ids: readonly string[]): Promise<Map<string, string>> {
    const rows = ids.length ? await this.db.selectFrom('identities').select(['id', 'address']).where('id', 'in', ids).execute() : [];
    return new Map(rows.map((row) => [row.id, row.address]));
  }

  async setCurrentKey(id: string, key: { publicKey: Uint8Array; keyUri: string }): Promise<Identity> {
    const row = await this.db
      .updateTable('identities')
      .set({ public_key: base64url.encode(key.publicKey), key_uri: key.keyUri })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return identityFromRow(row);
  }

  async suspend(id: string): Promise<boolean> {
    const result = await this.db.updateTable('identities').set({ status: 'suspended' }).where('id', '=', id).where('status', '=', 'active').executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async reinstate(address: string): Promise<Identity | undefined> {
    const row = await this.db.updateTable('identities').set({ status: 'active' }).where('address', '=', address).where('status', '=', 'suspended').returningAll().executeTakeFirst();
    return row && identityFromRow(row);
  }

  async activeAdminAddresses(): Promise<string[]> {
    const rows = await this.db.selectFrom('identities').select('address').where('role', '=', 'admin').where('status', '=', 'active').execute();
    return rows.map((row) => row.address);
  }

  async insert(identity: Identity, createdBy: string | null): Promise<void> {
    await this.db
      .insertInto('identities')
      .values({
        id: identity.id,
        address: identity.address,
        role: identity.role,
        status: identity.status,
        public_key: base64url.encode(identity.publicKey),
        key_uri: identity.keyUri,
        attributes: JSON.stringify(identity.attributes),
        created_at: identity.createdAt,
        created_by: createdBy,
        enrolled_at: identity.enrolledAt,
        revoked_at: identity.revokedAt,
        revoked_by: identity.revokedBy,
        revocation_reason: identity.revocationReason,
      })
      .execute();
  }

  async activate(id: string, at: number): Promise<Identity | undefined> {
    const row = await this.db
      .updateTable('identities')
      .set({ status: 'active', enrolled_at: at })
      .where('id', '=', id)
      .where('status', '!=', 'revoked')
      .returningAll()
      .executeTakeFirst();
    return row && identityFromRow(row);
  }

  async revoke(address: string, revocation: { at: number; by: string; reason: string }): Promise<Identity | undefined> {
    const row = await this.db
      .updateTable('identities')
      .set({ status: 'revoked', revoked_at: revocation.at, revoked_by: revocation.by, revocation_reason: revocation.reason })
      .where('address', '=', address)
      .where('status', '!=', 'revoked')
      .returningAll()
      .executeTakeFirst();
    return row && identityFromRow(row);
  }
}

function identityFromRow(row: Selectable<IdentityTable>): Identity {
  return {
    id: row.id,
    address: row.address,
    role: row.role,
    status: row.status,
    publicKey: base64url.decode(row.public_key),
    keyUri: row.key_uri,
    attributes: JSON.parse(row.attributes) as Record<string, string>,
    createdAt: row.created_at,
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
    revokedBy: row.revoked_by,
    revocationReason: row.revocation_reason,
  };
}
