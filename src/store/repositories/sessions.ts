import { type Kysely, PostgresAdapter, type Selectable } from 'kysely';
import { base64url } from '../../crypto/encoding.js';
import type { Database, SessionTable } from '../schema.js';

/** A session an identity's primary key certified (src/sessions/). Times are epoch ms. */
export interface SessionRecord {
  readonly id: string;
  readonly identityId: string;
  /** the primary key that certified it (a key of the identity; the identity id until a rotation) */
  readonly keyId: string;
  readonly generation: number;
  readonly publicKey: Uint8Array;
  readonly certificate: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

/** What a new certificate's generation meets among the identity's sessions. */
export interface GenerationsSeen {
  /** the highest generation the identity ever registered; null before its first session */
  readonly highest: number | null;
  /** a session still live (unexpired, not ended) with the same generation, if any */
  readonly liveSameGeneration: string | null;
}

export interface SessionRepository {
  /** The hot-path lookup of a session proof (Store.reader outside a transaction; cached by the registry). */
  find(id: string): Promise<SessionRecord | undefined>;
  /**
   * Locks the identity's sessions against concurrent registrations until the transaction ends
   * (PostgreSQL: its identity row FOR UPDATE; SQLite has one writer), then reports what `generation` meets.
   */
  lockGenerations(identityId: string, generation: number, now: number): Promise<GenerationsSeen>;
  insert(session: SessionRecord): Promise<void>;
  /** Ends every session of the identity not ended yet (revoked or suspended); returns how many. */
  endAll(identityId: string, now: number): Promise<number>;
  /** Session certificates by id, `limit` after the id `after` (audit export, which pages through them all). */
  certificatesAfter(after: string, limit: number): Promise<{ id: string; identityId: string; certificate: string }[]>;
}

function fromRow(row: Selectable<SessionTable>): SessionRecord {
  return {
    id: row.id,
    identityId: row.identity_id,
    keyId: row.key_id,
    generation: Number(row.generation),
    publicKey: base64url.decode(row.public_key),
    certificate: row.certificate,
    issuedAt: row.issued_at,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

export class SqlSessionRepository implements SessionRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly reader: Kysely<Database> = db,
  ) {}

  async find(id: string): Promise<SessionRecord | undefined> {
    const row = await this.reader.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
    return row && fromRow(row);
  }

  async lockGenerations(identityId: string, generation: number, now: number): Promise<GenerationsSeen> {
    if (this.db.getExecutor().adapter instanceof PostgresAdapter) await this.db.selectFrom('identities').select('id').where('id', '=', identityId).forUpdate().execute();
    const highest = await this.db.selectFrom('sessions').select((eb) => eb.fn.max('generation').as('highest')).where('identity_id', '=', identityId).executeTakeFirst();
    const live = await this.db
      .selectFrom('sessions')
      .select('id')
      .where('identity_id', '=', identityId)
      .where('generation', '=', generation)
      .where('expires_at', '>', now)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return { highest: highest?.highest == null ? null : Number(highest.highest), liveSameGeneration: live?.id ?? null };
  }

  async insert(session: SessionRecord): Promise<void> {
    await this.db
      .insertInto('sessions')
      .values({
        id: session.id,
        identity_id: session.identityId,
        key_id: session.keyId,
        generation: session.generation,
        public_key: base64url.encode(session.publicKey),
        certificate: session.certificate,
        issued_at: session.issuedAt,
        expires_at: session.expiresAt,
        created_at: session.createdAt,
        revoked_at: session.revokedAt,
      })
      .execute();
  }

  async endAll(identityId: string, now: number): Promise<number> {
    const result = await this.db.updateTable('sessions').set({ revoked_at: now }).where('identity_id', '=', identityId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async certificatesAfter(after: string, limit: number): Promise<{ id: string; identityId: string; certificate: string }[]> {
    const rows = await this.db.selectFrom('sessions').select(['id', 'identity_id', 'certificate']).where('id', '>', after).orderBy('id').limit(limit).execute();
    return rows.map((row) => ({ id: row.id, identityId: row.identity_id, certificate: row.certificate }));
  }

}
