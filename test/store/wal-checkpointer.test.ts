import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, sqliteIfIdle } from '../../src/store/database.js';
import { WalCheckpointer } from '../../src/store/wal-checkpointer.js';

const PAGE = 4096;
const ROWS_PER_ROUND = 300; // about one page each
const ROUNDS = 8;
const INTERVAL_MS = 40;

describe('WAL checkpoints on a background thread', () => {
  let dir: string;
  let path: string;
  let writer: SqliteDatabase.Database;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-wal-'));
    path = join(dir, 'test.db');
    writer = new SqliteDatabase(path);
    writer.pragma('journal_mode = WAL');
    writer.exec('create table t (x blob)');
  });
  afterEach(async () => {
    writer.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes ROUNDS rounds of ROWS_PER_ROUND pages, pausing between them; returns the WAL file's size in pages. */
  async function writeRounds(): Promise<number> {
    const insert = writer.prepare('insert into t values (?)');
    const round = writer.transaction(() => {
      for (let row = 0; row < ROWS_PER_ROUND; row++) insert.run(Buffer.alloc(PAGE - 100, row));
    });
    for (let index = 0; index < ROUNDS; index++) {
      round();
      await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 3));
    }
    return (await stat(`${path}-wal`)).size / PAGE;
  }

  it('keeps the WAL bounded while the writer checkpoints nothing itself', async () => {
    const checkpointer = new WalCheckpointer(writer, path, { intervalMs: INTERVAL_MS });
    try {
      expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      // Each round's frames are copied back before the next round, which then reuses the WAL.
      expect(await writeRounds()).toBeLessThan(2 * ROWS_PER_ROUND);
    } finally {
      await checkpointer.close();
    }
  });

  it('without it (and with automatic checkpoints off) the WAL grows with every round', async () => {
    writer.pragma('wal_autocheckpoint = 0');
    expect(await writeRounds()).toBeGreaterThan(ROUNDS * ROWS_PER_ROUND);
  });

  it('hands checkpoints back to the writer if the thread fails', async () => {
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    const checkpointer = new WalCheckpointer(writer, join(dir, 'missing.db'), { intervalMs: INTERVAL_MS });
    await vi.waitFor(() => expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(1000));
    expect((await warned).message).toContain('the checkpoint thread failed');
    await checkpointer.close();
  });

  it('a broker store has the writer hand checkpoints to the thread, and closes every connection', async () => {
    const brokerDb = join(dir, 'broker.db');
    const store = await openStore(`sqlite:${brokerDb}`, { backgroundCheckpoints: true });
    expect(sqliteIfIdle(store.db)!.database.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    await store.close();
    // SQLite removes the WAL when its last connection closes: the thread's included.
    await expect(stat(`${brokerDb}-wal`)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
