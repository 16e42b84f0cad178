import type { Kysely, Selectable } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import type { Clock } from '../clock.js';
import { BackendError, type CredentialBackend } from '../backends/credential-backend.js';
import { checkConstraints, type Constraints } from '../backends/http-api/scopes.js';
import { type BackendContext, backendFactory, type BackendSettings, type BackendType, parseBackendInput } from '../backends/registry.js';
import { isTesseraError, TesseraError } from '../errors.js';
import { open, seal } from '../secrets/envelope.js';
import type { WrappingKeys } from '../secrets/wrapping-keys.js';
import type { BackendTable, Database } from '../store/schema.js';
import { LIVE_STATES } from './lease.js';
import { repositoriesOn } from '../store/repositories/index.js';

export interface BackendInfo {
  readonly name: string;
  readonly type: string;
  readonly roles: string[];
  readonly createdAt: number;
}

type BackendRow = Selectable<BackendTable>;

const sealContext = (name: string) => `tessera-backend:${name}`;

function infoOf(row: BackendRow): BackendInfo {
  return { name: row.name, type: row.type, roles: backendFactory(row.type).roles(JSON.parse(row.config) as BackendSettings), createdAt: row.created_at };
}

/**
 * Registered backends and their live instances. A root secret is opened only in memory, to build
 * the instance, which is cached until the backend changes on any replica (the change feed), is
 * removed, or the broker closes.
 */
export class BackendService {
  private readonly instances = new Map<string, Promise<CredentialBackend>>();
  readonly #unsubscribe: () => void;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly wrappingKeys: WrappingKeys,
    private readonly context: BackendContext,
    private readonly feed: ChangeFeed,
  ) {
    this.#unsubscribe = feed.subscribe('backend', (_kind, name) => void this.#forget(name));
  }

  /** Checks the backend (connection and privileges) before anything is stored: a backend that is saved can mint and revoke. */
  async add(name: string, type: BackendType, input: Readonly<Record<string, unknown>>, actor: string): Promise<BackendInfo> {
    const { settings, rootSecret } = parseBackendInput(type, input, name);
    if (await this.db.selectFrom('backends').select('name').where('name', '=', name).executeTakeFirst()) {
      throw new TesseraError('conflict', `Backend ${name} already exists.`);
    }
    const backend = instantiate(type, settings, rootSecret, this.context);
    try {
      await prove(name, backend);
      const sealed = await seal(rootSecret, await this.wrappingKeys.current(), sealContext(name));
      const row: BackendRow = {
        name,
        type,
        config: JSON.stringify(settings),
        sealed_secret: sealed.ciphertext,
        wrapped_key: sealed.wrappedKey,
        wrapping_key_uri: sealed.wrappingKeyUri,
        created_at: this.clock.now(),
        created_by: actor,
      };
      const info = infoOf(row);
      await this.db.transaction().execute(async (trx) => {
        await trx.insertInto('backends').values(row).execute();
        await this.audit.append({ actor, action: 'backend.added', outcome: 'success', details: { backend: name, type, roles: info.roles } }, repositoriesOn(trx));
      });
      return info;
    } catch (error) {
      if (isDuplicateKey(error)) throw new TesseraError('conflict', `Backend ${name} already exists.`);
      throw error;
    } finally {
      // Not kept: the feed delivers this very insert, which would drop it (built again on first use).
      await backend.close();
    }
  }

  /** Runs the same check as add() on a registered backend, e.g. after its privileges changed. */
  async check(name: string, actor: string): Promise<BackendInfo> {
    const info = await this.get(name);
    try {
      await prove(name, await this.instance(name));
    } catch (error) {
      await this.audit.append({ actor, action: 'backend.checked', outcome: 'failure', reason: isTesseraError(error) ? error.code : 'internal', details: { backend: name } });
      throw error;
    }
    await this.audit.append({ actor, action: 'backend.checked', outcome: 'success', details: { backend: name } });
    return info;
  }

  async list(): Promise<BackendInfo[]> {
    return (await this.db.selectFrom('backends').selectAll().orderBy('name').execute()).map(infoOf);
  }

  async get(name: string): Promise<BackendInfo> {
    return infoOf(await this.row(name));
  }

  /** Throws invalid_request unless `role` exists and takes these constraints (proxied types only). */
  async checkGrant(name: string, role: string, constraints: Constraints): Promise<void> {
    const row = await this.row(name);
    const factory = backendFactory(row.type);
    const settings = JSON.parse(row.config) as BackendSettings;
    const roles = factory.roles(settings);
    // Proxied HTTP API types (those with presets) call their roles scopes, as `grant --scope` does.
    if (!roles.includes(role)) throw new TesseraError('invalid_request', `Backend ${name} has no ${factory.preset ? 'scope' : 'role'} "${role}" (known: ${roles.join(', ')}).`);
    checkConstraints(factory.preset?.(settings, role), role, constraints);
  }

  /** Refused while any lease of the backend may still hold an upstream credential. */
  async remove(name: string, actor: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.row(name, trx);
      const live = await trx
        .selectFrom('leases')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('backend', '=', name)
        .where('state', 'in', LIVE_STATES)
        .executeTakeFirstOrThrow();
      if (Number(live.count) > 0) throw new TesseraError('conflict', `Backend ${name} still has ${live.count} live lease(s); revoke them first.`);
      const grants = await trx.deleteFrom('grants').where('backend', '=', name).executeTakeFirst();
      await trx.deleteFrom('backends').where('name', '=', name).execute();
      await this.audit.append(
        { actor, action: 'backend.removed', outcome: 'success', details: { backend: name, grants_removed: Number(grants.numDeletedRows) } },
        repositoriesOn(trx),
      );
    });
    await this.#forget(name);
  }

  /** The live instance, built on first use from the stored settings and the opened root secret. */
  instance(name: string): Promise<CredentialBackend> {
    // Takes in changes committed meanwhile (synchronously on SQLite), so a changed backend is rebuilt.
    this.feed.sync();
    let instance = this.instances.get(name);
    if (!instance) {
      instance = this.build(name);
      instance.catch(() => this.instances.delete(name));
      this.instances.set(name, instance);
    }
    return instance;
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    const instances = await Promise.allSettled(this.instances.values());
    this.instances.clear();
    await Promise.all(instances.map((i) => (i.status === 'fulfilled' ? i.value.close() : undefined)));
  }

  /**
   * Drops the instance of `name` (every instance for null) and closes it: the next use builds one
   * from the row as it is now. A call still running on the old instance may fail as it closes
   * (an issue is then denied and its intent revoked): backends change by an admin's hand, rarely.
   */
  async #forget(name: string | null): Promise<void> {
    const names = name === null ? [...this.instances.keys()] : [name];
    const dropped = names.flatMap((key) => {
      const instance = this.instances.get(key);
      this.instances.delete(key);
      return instance ? [instance] : [];
    });
    await Promise.all(dropped.map((instance) => instance.then((backend) => backend.close()).catch(() => undefined)));
  }

  private async build(name: string): Promise<CredentialBackend> {
    const row = await this.row(name);
    const sealed = { ciphertext: row.sealed_secret, wrappedKey: row.wrapped_key, wrappingKeyUri: row.wrapping_key_uri };
    const rootSecret = await open(sealed, await this.wrappingKeys.get(row.wrapping_key_uri), sealContext(name));
    return backendFactory(row.type).create(JSON.parse(row.config) as BackendSettings, rootSecret, this.context);
  }

  private async row(name: string, db: Kysely<Database> = this.db): Promise<BackendRow> {
    const row = await db.selectFrom('backends').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw new TesseraError('not_found', `No backend named ${name}.`);
    return row;
  }
}

/** backend.check(), with an unreachable upstream reported as the admin's input error. */
async function prove(name: string, backend: CredentialBackend): Promise<void> {
  try {
    await backend.check();
  } catch (error) {
    if (error instanceof BackendError) throw new TesseraError('backend_unreachable', `Backend ${name}: ${error.message}`);
    throw error;
  }
}

/** Settings a backend rejects (e.g. an unknown placeholder) are the admin's input error. */
function instantiate(type: BackendType, settings: BackendSettings, rootSecret: string, context: BackendContext): CredentialBackend {
  try {
    return backendFactory(type).create(settings, rootSecret, context);
  } catch (error) {
    if (isTesseraError(error, 'config_invalid')) throw new TesseraError('invalid_request', error.message);
    throw error;
  }
}

function isDuplicateKey(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
