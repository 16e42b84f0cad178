import type { Kysely, Selectable } from 'kysely';
import type { Database, DelegationTable } from '../schema.js';

/** A user at the root of a chain (helper userauth's user delegations): the token's issuer, subject and chosen claims. */
export interface UserPrincipal {
  readonly iss: string;
  readonly sub: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

export type DelegationStatus = DelegationTable['status'];
export type RootKind = DelegationTable['root_kind'];

/** One link of a delegation chain, as the domain sees it. */
export interface Delegation {
  readonly id: string;
  readonly parentId: string | null;
  readonly rootKind: RootKind;
  /** null when the delegator is a user (then delegatorUser is set) */
  readonly delegatorIdentityId: string | null;
  readonly delegatorUser: UserPrincipal | null;
  readonly delegateeIdentityId: string;
  readonly backend: string;
  readonly role: string;
  readonly constraints: Readonly<Record<string, string>>;
  readonly purpose: string;
  /** 1 for a link straight from the delegator's own authority; parent's depth + 1 below it */
  readonly depth: number;
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly status: DelegationStatus;
  readonly revokedAt: number | null;
  readonly revokedBy: string | null;
  readonly revokedReason: string | null;
  /** the delegator's proof of the delegation (src/delegations/evidence.ts), or a user delegation's token evidence */
  readonly evidence: unknown;
}

export interface DelegationFilter {
  /** given by this identity */
  readonly delegatorIdentityId?: string;
  /** received by this identity */
  readonly delegateeIdentityId?: string;
  readonly status?: DelegationStatus;
}

export interface RevocationCause {
  readonly actor: string | null;
  readonly reason: string;
  readonly at: number;
}

export interface DelegationRepository {
  insert(delegation: Delegation): Promise<void>;
  get(id: string): Promise<Delegation | undefined>;
  /** `id` and its ancestors, leaf first, root last; empty if `id` does not exist. */
  chain(id: string): Promise<Delegation[]>;
  /** Active delegations `identityId` received for a backend role (unexpired at `now`). */
  activeReceived(identityId: string, backend: string, role: string, now: number): Promise<Delegation[]>;
  list(filter: DelegationFilter, limit: number): Promise<Delegation[]>;
  /**
   * Revokes the active delegations among `rootIds` and every delegation below them, and returns the
   * ids of the whole subtree (already revoked links included: their leases go too).
   */
  revokeSubtrees(rootIds: readonly string[], cause: RevocationCause): Promise<{ readonly revoked: Delegation[]; readonly subtree: string[] }>;
  /** Active delegations given or received by an identity: where an identity revocation cuts chains. */
  activeTouching(identityId: string): Promise<string[]>;
}

type Row = Selectable<DelegationTable>;

function fromRow(row: Row): Delegation {
  return {
    id: row.id,
    parentId: row.parent_id,
    rootKind: row.root_kind,
    delegatorIdentityId: row.delegator_identity_id,
    delegatorUser: row.delegator_user === null ? null : (JSON.parse(row.delegator_user) as UserPrincipal),
    delegateeIdentityId: row.delegatee_identity_id,
    backend: row.backend,
    role: row.role,
    constraints: JSON.parse(row.constraints) as Record<string, string>,
    purpose: row.purpose,
    depth: Number(row.depth),
    expiresAt: Number(row.expires_at),
    createdAt: Number(row.created_at),
    status: row.status,
    revokedAt: row.revoked_at,
    revokedBy: row.revoked_by,
    revokedReason: row.revoked_reason,
    evidence: JSON.parse(row.evidence) as unknown,
  };
}

function toRow(delegation: Delegation): Row {
  return {
    id: delegation.id,
    parent_id: delegation.parentId,
    root_kind: delegation.rootKind,
    delegator_identity_id: delegation.delegatorIdentityId,
    delegator_user: delegation.delegatorUser === null ? null : JSON.stringify(delegation.delegatorUser),
    delegatee_identity_id: delegation.delegateeIdentityId,
    backend: delegation.backend,
    role: delegation.role,
    constraints: JSON.stringify(delegation.constraints),
    purpose: delegation.purpose,
    depth: delegation.depth,
    expires_at: delegation.expiresAt,
    created_at: delegation.createdAt,
    status: delegation.status,
    revoked_at: delegation.revokedAt,
    revoked_by: delegation.revokedBy,
    revoked_reason: delegation.revokedReason,
    evidence: JSON.stringify(delegation.evidence),
  };
}

/** The delegations table on either dialect; bind it to a transaction by constructing it on one. */
export class SqlDelegationRepository implements DelegationRepository {
  constructor(
    private readonly db: Kysely<Database>,
    /** Store.reader for the chain checks every lease request runs (outside a transaction); `db` inside one. */
    private readonly reader: Kysely<Database>,
  ) {}

  async insert(delegation: Delegation): Promise<void> {
    await this.db.insertInto('delegations').values(toRow(delegation)).execute();
  }

  async get(id: string): Promise<Delegation | undefined> {
    const row = await this.db.selectFrom('delegations').selectAll().where('id', '=', id).executeTakeFirst();
    return row && fromRow(row);
  }

  async chain(id: string): Promise<Delegation[]> {
    // A chain is short (the depth limit): one recursive query rather than a round trip per link.
    const rows = await this.reader
      .withRecursive('up', (db) =>
        db
          .selectFrom('delegations')
          .selectAll()
          .where('id', '=', id)
          .unionAll((db) => db.selectFrom('delegations').innerJoin('up', 'up.parent_id', 'delegations.id').selectAll('delegations')),
      )
      .selectFrom('up')
      .selectAll()
      .orderBy('depth', 'desc')
      .execute();
    return rows.map((row) => fromRow(row as Row));
  }

  async activeReceived(identityId: string, backend: string, role: string, now: number): Promise<Delegation[]> {
    const rows = await this.reader
      .selectFrom('delegations')
      .selectAll()
      .where('delegatee_identity_id', '=', identityId)
      .where('status', '=', 'active')
      .where('backend', '=', backend)
      .where('role', '=', role)
      .where('expires_at', '>', now)
      .orderBy('id')
      .execute();
    return rows.map(fromRow);
  }

  async list(filter: DelegationFilter, limit: number): Promise<Delegation[]> {
    let query = this.db.selectFrom('delegations').selectAll().orderBy('created_at').orderBy('id').limit(limit);
    if (filter.delegatorIdentityId !== undefined) query = query.where('delegator_identity_id', '=', filter.delegatorIdentityId);
    if (filter.delegateeIdentityId !== undefined) query = query.where('delegatee_identity_id', '=', filter.delegateeIdentityId);
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    return (await query.execute()).map(fromRow);
  }

  async revokeSubtrees(rootIds: readonly string[], cause: RevocationCause): Promise<{ revoked: Delegation[]; subtree: string[] }> {
    if (rootIds.length === 0) return { revoked: [], subtree: [] };
    const subtree = (
      await this.db
        .withRecursive('below(id)', (db) =>
          db
            .selectFrom('delegations')
            .select('id')
            .where('id', 'in', [...rootIds])
            .union((db) => db.selectFrom('delegations').innerJoin('below', 'below.id', 'delegations.parent_id').select('delegations.id')),
        )
        .selectFrom('below')
        .select('id')
        .execute()
    ).map((row) => row.id);
    const revoked = await this.db
      .updateTable('delegations')
      .set({ status: 'revoked', revoked_at: cause.at, revoked_by: cause.actor, revoked_reason: cause.reason })
      .where('id', 'in', subtree)
      .where('status', '=', 'active')
      .returningAll()
      .execute();
    return { revoked: revoked.map(fromRow), subtree };
  }

  async activeTouching(identityId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('delegations')
      .select('id')
      .where('status', '=', 'active')
      .where((eb) => eb.or([eb('delegator_identity_id', '=', identityId), eb('delegatee_identity_id', '=', identityId)]))
      .execute();
    return rows.map((row) => row.id);
  }
}
