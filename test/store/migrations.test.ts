import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { eventHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { eventRecordFromRow } from '../../src/audit/records.js';
import { migrator } from '../../src/store/migrations/index.js';
import type { Database } from '../../src/store/schema.js';

const MIGRATIONS_DIR = join(import.meta.dirname, '../../src/store/migrations');

describe('migrations', () => {
  it('are frozen code: no migration imports a live module at run time', () => {
    // Migrations and their shared helpers (e.g. change-triggers.ts), which are checked alike.
    const files = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith('.ts') && file !== 'index.ts');
    expect(files.filter((file) => /^\d{4}-/.test(file)).length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      const source = readFileSync(join(MIGRATIONS_DIR, file), 'utf8');
      const runtimeImports = [...source.matchAll(/^import (?!type )[^;]*? from '([^']+)'/gm)].map((match) => match[1]);
      for (const from of runtimeImports) expect(from, `${file} imports ${from}`).toMatch(/^(kysely|node:.*|\.\/(?!index\.js)[a-z][a-z-]*\.js)$/);
    }
  });

  it('chains events written before the audit chain existed, renumbered, exactly as the live hash does', async () => {
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });
    try {
      const migrations = migrator(db as Kysely<unknown>, 'sqlite');
      expect((await migrations.migrateTo('0002-leases')).error).toBeUndefined();
      // Gaps in seq, as rolled-back transactions leave them; details with members out of order and nesting.
      const legacy = [
        { seq: 3, at: 1_700_000_000_000, actor: 'adm', action: 'identity.provisioned', outcome: 'granted', identity_id: 'id-1', reason: null, details: '{"z":1,"a":{"y":[1,"é"],"b":null}}' },
        { seq: 7, at: 1_700_000_000_500, actor: null, action: 'proof.rejected', outcome: 'denied', identity_id: null, reason: 'proof_stale', details: '{"url":"http://x/\\u2028"}' },
        { seq: 8, at: 1_700_000_001_000, actor: 'id-1', action: 'lease.issued', outcome: 'granted', identity_id: 'id-1', reason: null, details: '{}' },
      ];
      await (db as Kysely<any>).insertInto('audit_events').values(legacy).execute();
      expect((await migrations.migrateToLatest()).error).toBeUndefined();

      const rows = await db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
      expect(rows.map((row) => [row.seq, row.action])).toEqual(legacy.map((event, i) => [i + 1, event.action]));
      let previous = GENESIS_HASH;
      for (const row of rows) {
        expect(row.prev_hash).toBe(previous);
        expect(row.hash).toBe(eventHash(eventRecordFromRow(row)));
        previous = row.hash;
      }
      const head = await db.selectFrom('audit_chain_head').selectAll().executeTakeFirstOrThrow();
      expect([Number(head.seq), head.hash]).toEqual([3, previous]);
    } finally {
      await db.destroy();
    }
  });

  it('keeps lease lookups on the partial indexes', async () => {
    const sqlite = new SqliteDatabase(':memory:');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    try {
      const migrations = migrator(db as Kysely<unknown>, 'sqlite');
      expect((await migrations.migrateTo('0011-change-kinds')).error).toBeUndefined();
      expect((await migrations.migrateToLatest()).error).toBeUndefined();

      const plan = (query: string, parameters: unknown[]) => (sqlite.prepare(`EXPLAIN QUERY PLAN ${query}`).all(...parameters) as { detail: string }[]).map((row) => row.detail).join(' | ');
      expect(plan('SELECT id FROM leases WHERE token_hash = ?', ['h'])).toContain('USING INDEX leases_token_hash');
      expect(plan('SELECT id FROM leases WHERE delegation_id IN (?, ?) AND state IN (?, ?)', ['d1', 'd2', 'active', 'pending'])).toContain('USING INDEX leases_delegation');
      expect(plan('SELECT id FROM leases WHERE state = ? AND next_attempt_at <= ?', ['revocation-pending', 1])).toContain('USING INDEX leases_state_next_attempt_at');
    } finally {
      await db.destroy();
    }
  });
});
