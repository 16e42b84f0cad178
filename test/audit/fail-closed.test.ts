import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditSink } from '../../src/audit/audit-log.js';
import { IdentityService } from '../../src/identity/identities.js';
import { type AuditFixture, auditFixture, memorySigner } from './support.js';

const policy = { defaultTtlMs: 600_000, maxTtlMs: 86_400_000, failures: { max: 10, windowMs: 600_000 } };

/** Makes the database refuse every audit insert, as a full disk or a revoked grant would. */
async function rejectAuditInserts(fixture: AuditFixture): Promise<void> {
  const db = fixture.store.db;
  if (fixture.store.dialect === 'sqlite') {
    await sql`create trigger audit_reject before insert on audit_events begin select raise(abort, 'audit write refused'); end`.execute(db);
  } else {
    await sql`create function audit_reject() returns trigger language plpgsql as $$ begin raise exception 'audit write refused'; end $$`.execute(db);
    await sql`create trigger audit_reject before insert on audit_events for each row execute function audit_reject()`.execute(db);
  }
}

describe.each(['sqlite', 'postgres'] as const)('an operation whose audit write fails does not happen (%s)', (dialect) => {
  let fixture: AuditFixture;
  let identities: IdentityService;
  const input = () => ({ address: 'bot@acme.local', publicKey: memorySigner().publicKey, keyUri: 'memory:test' });

  beforeEach(async () => {
    fixture = await auditFixture(dialect);
    identities = new IdentityService(fixture.store, fixture.audit, fixture.clock, policy);
  });
  afterEach(() => fixture?.close());

  it('rolls back a registration, and the chain head with it', async () => {
    await rejectAuditInserts(fixture);
    await expect(identities.register(input(), null)).rejects.toThrow(/audit write refused/);
    expect(await fixture.store.db.selectFrom('identities').selectAll().execute()).toEqual([]);
    expect(await fixture.store.db.selectFrom('audit_chain_head').select('seq').executeTakeFirstOrThrow()).toEqual({ seq: 0 });
  });

  it('rolls back a revocation', async () => {
    await identities.register({ ...input(), status: 'active' }, null);
    await rejectAuditInserts(fixture);
    await expect(identities.revoke('bot@acme.local', 'test', 'admin')).rejects.toThrow(/audit write refused/);
    expect((await identities.getByAddress('bot@acme.local')).status).toBe('active');
    await sql`drop trigger audit_reject ${sql.raw(dialect === 'postgres' ? 'on audit_events' : '')}`.execute(fixture.store.db);
    expect(await fixture.verify()).toMatchObject({ ok: true, events: 1 });
  });

  it('rolls back a ticket when the sink itself throws', async () => {
    await identities.register(input(), null);
    const failing: AuditSink = {
      append: async (event, executor) => {
        if (event.action === 'ticket.issued') throw new Error('sink down');
        return fixture.audit.append(event, executor);
      },
    };
    await expect(new IdentityService(fixture.store, failing, fixture.clock, policy).issueTicket('bot@acme.local', undefined, 'admin')).rejects.toThrow('sink down');
    expect(await fixture.store.db.selectFrom('enrollment_tickets').selectAll().execute()).toEqual([]);
  });
});
