import type { Kysely } from 'kysely';
import { type Precompiled, precompiled } from '../precompiled.js';
import type { Database } from '../schema.js';

/** Who may lease which backend role, for how long (the grants table's row). */
export interface Grant {
  readonly id: string;
  /** An identity address, or `attr:<key>=<value>` for every identity carrying that attribute. */
  readonly subject: string;
  readonly backend: string;
  readonly role: string;
  readonly max_ttl_ms: number;
  readonly default_ttl_ms: number;
  /** JSON object of scope constraints (e.g. {"max_amount":"5000"}), checked by the credential proxy. */
  readonly constraints: string;
  /** JSON object claim -> value: leases must act for a user (a user-rooted chain) carrying these claims (src/trust/user-claims.ts) */
  readonly required_user_claims: string;
  readonly created_at: number;
  readonly created_by: string | null;
}

export interface GrantRepository {
  insert(grant: Grant): Promise<void>;
  findById(id: string): Promise<Grant | undefined>;
  /** Ordered by creation time, then id. */
  list(filter?: { backend?: string; subject?: string }): Promise<Grant[]>;
  /** Deletes it; the deleted grant, or undefined if there was none. */
  remove(id: string): Promise<Grant | undefined>;
  /**
   * The grants naming one of `subjects` for the backend role, the most generous first: longest max
   * TTL, then lowest id. Runs on every lease request: precompiled, and on Store.reader outside a transaction.
   */
  mostGenerousFirst(backend: string, role: string, subjects: readonly string[]): Promise<Grant[]>;
}

/** mostGenerousFirst()'s query for `count` subjects (an identity's address and its attributes: at most 33), compiled once per count. */
const grantQueries = new Map<number, Precompiled<Grant>>();
function grantQuery(count: number): Precompiled<Grant> {
  let query = grantQueries.get(count);
  if (!query) {
    const sample = ['backend', 'role', ...Array.from({ length: count }, (_, i) => `subject ${i}`)];
    query = precompiled<Grant>(
      (db, backend: string, role: string, ...subjects: string[]) =>
        db
          .selectFrom('grants')
          .selectAll()
          .where('backend', '=', backend)
          .where('role', '=', role)
          .where('subject', 'in', subjects)
          .orderBy('max_ttl_ms', 'desc')
          .orderBy('id'),
      sample,
    );
    grantQueries.set(count, query);
  }
  return query;
}

export class SqlGrantRepository implements GrantRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly reader: Kysely<Database>,
  ) {}

  async insert(grant: Grant): Promise<void> {
    await this.db.insertInto('grants').values(grant).execute();
  }

  async findById(id: string): Promise<Grant | undefined> {
    return this.db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(filter: { backend?: string; subject?: string } = {}): Promise<Grant[]> {
    let query = this.db.selectFrom('grants').selectAll().orderBy('created_at').orderBy('id');
    if (filter.backend) query = query.where('backend', '=', filter.backend);
    if (filter.subject) query = query.where('subject', '=', filter.subject);
    return query.execute();
  }

  async remove(id: string): Promise<Grant | undefined> {
    return this.db.deleteFrom('grants').where('id', '=', id).returningAll().executeTakeFirst();
  }

  async mostGenerousFirst(backend: string, role: string, subjects: readonly string[]): Promise<Grant[]> {
    return (await grantQuery(subjects.length)(this.reader, [backend, role, ...subjects])).rows;
  }
}
