import { type Kysely, type Selectable, sql } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { Constraints } from '../backends/http-api/scopes.js';
import type { Clock } from '../clock.js';
import { randomToken } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { type Precompiled, precompiled } from '../store/precompiled.js';
import type { Database, GrantTable } from '../store/schema.js';
import type { BackendService } from './backend-service.js';
import { repositoriesOn } from '../store/repositories/index.js';

export type Grant = Selectable<GrantTable>;

export interface NewGrant {
  readonly subject: string;
  readonly backend: string;
  readonly role: string;
  readonly maxTtlMs: number;
  readonly defaultTtlMs?: number;
  /** Scope constraints of proxied backends, e.g. {max_amount: "5000"}. */
  readonly constraints?: Constraints;
}

const ATTRIBUTE_SUBJECT = 'attr:';

/** The subjects that name `identity`: its address and one `attr:key=value` per attribute. */
function subjectsOf(identity: Identity): string[] {
  return [identity.address, ...Object.entries(identity.attributes).map(([key, value]) => `${ATTRIBUTE_SUBJECT}${key}=${value}`)];
}

/**
 * find()'s query for an identity with `count` subjects (its address and one per attribute: at most
 * 33), compiled once per count: it runs on every lease request.
 */
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
          .orderBy('id')
          .limit(sql.lit(1)),
      sample,
    );
    grantQueries.set(count, query);
  }
  return query;
}

/** Who may lease which backend role, for how long. Deny by default: no matching grant, no lease. */
export class GrantService {
  constructor(
    private readonly db: Kysely<Database>,
    /** Store.reader: find() runs on every lease request and must not queue behind other requests' transactions. */
    private readonly reader: Kysely<Database>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
  ) {}

  async create(input: NewGrant, actor: string): Promise<Grant> {
    const defaultTtlMs = input.defaultTtlMs ?? input.maxTtlMs;
    if (defaultTtlMs > input.maxTtlMs) throw new TesseraError('invalid_request', 'default_ttl_seconds must not exceed max_ttl_seconds.');
    const constraints = input.constraints ?? {};
    await this.backends.checkGrant(input.backend, input.role, constraints);
    const grant: Grant = {
      id: `grt_${randomToken(12)}`,
      subject: input.subject,
      backend: input.backend,
      role: input.role,
      max_ttl_ms: input.maxTtlMs,
      default_ttl_ms: defaultTtlMs,
      constraints: JSON.stringify(constraints),
      created_at: this.clock.now(),
      created_by: actor,
    };
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('grants').values(grant).execute();
      await this.audit.append({ actor, action: 'grant.created', outcome: 'success', details: grantDetails(grant) }, repositoriesOn(trx));
    });
    return grant;
  }

  async list(filter: { backend?: string; subject?: string } = {}): Promise<Grant[]> {
    let query = this.db.selectFrom('grants').selectAll().orderBy('created_at').orderBy('id');
    if (filter.backend) query = query.where('backend', '=', filter.backend);
    if (filter.subject) query = query.where('subject', '=', filter.subject);
    return query.execute();
  }

  async revoke(id: string, actor: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const grant = await trx.deleteFrom('grants').where('id', '=', id).returningAll().executeTakeFirst();
      if (!grant) throw new TesseraError('not_found', `No grant ${id}.`);
      await this.audit.append({ actor, action: 'grant.revoked', outcome: 'success', details: grantDetails(grant) }, repositoriesOn(trx));
    });
  }

  /** The most generous grant (longest max TTL) naming this identity for the backend role. */
  async find(identity: Identity, backend: string, role: string): Promise<Grant | undefined> {
    const subjects = subjectsOf(identity);
    return (await grantQuery(subjects.length)(this.reader, [backend, role, ...subjects])).rows[0];
  }

  async findById(id: string): Promise<Grant | undefined> {
    return this.db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
  }
}

const grantDetails = (grant: Grant) => ({
  grant_id: grant.id,
  subject: grant.subject,
  backend: grant.backend,
  role: grant.role,
  max_ttl_ms: grant.max_ttl_ms,
  default_ttl_ms: grant.default_ttl_ms,
  constraints: JSON.parse(grant.constraints) as Constraints,
});
