import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, sqliteIfIdle } from '../../src/store/database.js';
import { type WalCheckpointResult, WalCheckpointer } from '../../src/store/wal-checkpointer.js';

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

  /** A checkpoint that copied a round or more back, every frame of it. */
  const fullyCopied = (result: WalCheckpointResult) => result.busy === 0 && result.log >= ROWS_PER_ROUND && result.checkpointed === result.log;

  /** Writes one round of ROWS_PER_ROUND pages in one transaction. */
  function writeRound(): void {
    const insert = writer.prepare('insert into t values (?)');
    writer.transaction(() => {
      for (let row = 0; row < ROWS_PER_ROUND; row++) insert.run(Buffer.alloc(PAGE - 100, row));
    })();
  }

  /** Writes ROUNDS rounds, running `between` after each; returns the WAL file's size in pages. */
  async function writeRounds(between: () => Promise<unknown>): Promise<number> {
    for (let index = 0; index < ROUNDS; index++) {
      writeRound();
      await between();
    }
    return (await stat(`${path}-wal`)).size / PAGE;
  }

  it('keeps the WAL bounded while the writer checkpoints nothing itself', async () => {
    // No timer: the test has the thread checkpoint between rounds, so no race with the scheduler.
    const checkpointer = new WalCheckpointer(writer, path, { intervalMs: 0 });
    try {
      expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      const results: WalCheckpointResult[] = [];
      // Each round's frames are copied back before the next round, which then reuses the WAL.
      expect(await writeRounds(async () => results.push(await checkpointer.checkpoint()))).toBeLessThan(2 * ROWS_PER_ROUND);
      // Every checkpoint (on the thread's own connection) copied the whole round back.
      expect(results).toHaveLength(ROUNDS);
      for (const result of results) expect(fullyCopied(result)).toBe(true);
    } finally {
      await checkpointer.close();
    }
  });

  it('checkpoints on its own timer', async () => {
    const done: WalCheckpointResult[] = [];
    const checkpointer = new WalCheckpointer(writer, path, { intervalMs: INTERVAL_MS, onCheckpoint: (result) => done.push(result) });
    try {
      writeRound();
      // However long the thread takes to get scheduled, it copies the round back without being asked.
      await vi.waitFor(() => expect(done.some(fullyCopied)).toBe(true), { timeout: 20_000, interval: 20 });
      const size = (await stat(`${path}-wal`)).size;
      writeRound(); // reuses the checkpointed WAL from its start instead of growing it
      expect((await stat(`${path}-wal`)).size).toBe(size);
    } finally {
      await checkpointer.close();
    }
  });

  it('without it (and with automatic checkpoints off) the WAL grows with every round', async () => {
    writer.pragma('wal_autocheckpoint = 0');
    expect(await writeRounds(async () => undefined)).toBeGreaterThan(ROUNDS * ROWS_PER_ROUND);
  });

  it('hands checkpoints back to the writer if the thread fails', async () => {
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    const checkpointer = new WalCheckpointer(writer, join(dir, 'missing.db'), { intervalMs: INTERVAL_MS });
    // The warning is emitted after automatic checkpoints were switched back on.
    expect((await warned).message).toContain('the checkpoint thread failed');
    expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
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
