import type { Kysely } from 'kysely';
import { LIVE_STATES } from '../../leases/lease.js';
import type { Database } from '../schema.js';

/** A registered backend as stored: settings as JSON, the root secret sealed (src/secrets/envelope.ts). */
export interface StoredBackend {
  readonly name: string;
  readonly type: string;
  /** JSON object of type-specific settings; never holds the root secret. */
  readonly config: string;
  readonly sealedSecret: string;
  readonly wrappedKey: string;
  readonly wrappingKeyUri: string;
  readonly createdAt: number;
  readonly createdBy: string | null;
}

export interface BackendRepository {
  find(name: string): Promise<StoredBackend | undefined>;
  /** Ordered by name. */
  list(): Promise<StoredBackend[]>;
  /** Throws the driver's duplicate-key error if the name is taken (isDuplicateKey). */
  insert(backend: StoredBackend): Promise<void>;
  /** Leases of the backend that may still hold an upstream credential. */
  liveLeaseCount(name: string): Promise<number>;
  /** Deletes the backend and its grants; how many grants went with it. */
  remove(name: string): Promise<{ grantsRemoved: number }>;
}

type BackendRow = Database['backends'];

export class SqlBackendRepository implements BackendRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async find(name: string): Promise<StoredBackend | undefined> {
    const row = await this.db.selectFrom('backends').selectAll().where('name', '=', name).executeTakeFirst();
    return row && backendFromRow(row);
  }

  async list(): Promise<StoredBackend[]> {
    return (await this.db.selectFrom('backends').selectAll().orderBy('name').execute()).map(backendFromRow);
  }

  async insert(backend: StoredBackend): Promise<void> {
    await this.db
      .insertInto('backends')
      .values({
        name: backend.name,
        type: backend.type,
        config: backend.config,
        sealed_secret: backend.sealedSecret,
        wrapped_key: backend.wrappedKey,
        wrapping_key_uri: backend.wrappingKeyUri,
        created_at: backend.createdAt,
        created_by: backend.createdBy,
      })
      .execute();
  }

  async liveLeaseCount(name: string): Promise<number> {
    const live = await this.db
      .selectFrom('leases')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('backend', '=', name)
      .where('state', 'in', LIVE_STATES)
      .executeTakeFirstOrThrow();
    return Number(live.count);
  }

  async remove(name: string): Promise<{ grantsRemoved: number }> {
    const grants = await this.db.deleteFrom('grants').where('backend', '=', name).executeTakeFirst();
    await this.db.deleteFrom('backends').where('name', '=', name).execute();
    return { grantsRemoved: Number(grants.numDeletedRows) };
  }
}

function backendFromRow(row: BackendRow): StoredBackend {
  return {
    name: row.name,
    type: row.type,
    config: row.config,
    sealedSecret: row.sealed_secret,
    wrappedKey: row.wrapped_key,
    wrappingKeyUri: row.wrapping_key_uri,
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
}

/** A unique-key violation, as PostgreSQL and SQLite report it. */
export function isDuplicateKey(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
