import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DatabaseAuditLog } from '../../src/audit/audit-log.js';
import type { Database } from '../../src/store/schema.js';
import { repositoriesOn } from '../../src/store/repositories/index.js';
import { type AuditFixture, auditFixture } from '../audit/support.js';

const REPLICAS = 3;
const EVENTS_PER_REPLICA = 100;

describe('one audit chain for several replicas', () => {
  let fixture: AuditFixture;
  const replicas: Kysely<Database>[] = [];
  let headLocks = 0;

  beforeAll(async () => {
    fixture = await auditFixture('postgres');
    const { rows } = await sql<{ name: string }>`SELECT current_database() AS name`.execute(fixture.store.db);
    const url = new URL(inject('postgresUrl'));
    url.pathname = `/${rows[0]!.name}`;
    for (let i = 0; i < REPLICAS; i++) {
      replicas.push(
        new Kysely<Database>({
          dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url.toString(), max: 10 }) }),
          // Every append takes the chain-head row lock with its first UPDATE of it.
          log: (event) => {
            if (event.level === 'query' && /^update "audit_chain_head" set "seq"/.test(event.query.sql)) headLocks++;
          },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const db of replicas) await db.destroy();
    await fixture?.close();
  });

  it('serialises the appends of every replica on one head, a lock per batch rather than per event', async () => {
    await Promise.all(
      replicas.flatMap((db, replica) => {
        const audit = new DatabaseAuditLog(repositoriesOn(db), fixture.clock);
        return Array.from({ length: EVENTS_PER_REPLICA }, (_, i) => audit.append({ actor: null, action: 'request.rejected', outcome: 'denied', details: { replica, i } }));
      }),
    );
    expect(headLocks).toBeLessThanOrEqual(REPLICAS * 2);
    expect(await fixture.verify()).toMatchObject({ ok: true, events: REPLICAS * EVENTS_PER_REPLICA });
  });
});
