import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type SqliteDatabase from 'better-sqlite3';

/** How often the background thread copies the WAL back into the database file. */
const WAL_CHECKPOINT_INTERVAL_MS = 500;

/** SQLite's own default, for when the background thread is gone. */
const AUTOCHECKPOINT_PAGES = 1000;

// A script rather than a module file: it runs the same from src/ under vitest and from dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
const checkpoint = (requested) => {
  const [result] = db.pragma('wal_checkpoint(PASSIVE)');
  parentPort.postMessage({ requested, result });
};
const timer = workerData.intervalMs > 0 ? setInterval(() => checkpoint(false), workerData.intervalMs) : undefined;
parentPort.on('message', (message) => {
  if (message === 'checkpoint') return checkpoint(true);
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/** What one PASSIVE checkpoint did: WAL frames in all, and how many of them are in the database file now. */
export interface WalCheckpointResult {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

/**
 * Moves SQLite's WAL checkpoints off the event loop. By default the connection that commits
 * copies the WAL into the database file whenever it has grown past 1000 pages, fsyncs included,
 * which stalls every request in flight for milliseconds. Here a worker thread with its own
 * connection runs PASSIVE checkpoints (they never block readers or the writer) on a timer, and
 * the writer's automatic ones are off. Should the thread fail, the writer takes them over again.
 */
export class WalCheckpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  readonly #waiting: ((result: WalCheckpointResult) => void)[] = [];

  /**
   * `intervalMs` 0 runs no timer: checkpoints happen on checkpoint() only (tests). `onCheckpoint`
   * hears the result of every checkpoint the thread runs.
   */
  constructor(writer: SqliteDatabase.Database, path: string, options: { intervalMs?: number; onCheckpoint?: (result: WalCheckpointResult) => void } = {}) {
    writer.pragma('wal_autocheckpoint = 0');
    const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, betterSqlite3, intervalMs: options.intervalMs ?? WAL_CHECKPOINT_INTERVAL_MS } });
    this.#worker.unref();
    this.#worker.once('error', (error) => {
      if (writer.open) writer.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
      process.emitWarning(`WAL checkpoints are back on the writer: the checkpoint thread failed (${error.message})`);
    });
    this.#worker.on('message', ({ requested, result }: { requested: boolean; result: WalCheckpointResult }) => {
      options.onCheckpoint?.(result);
      if (requested) this.#waiting.shift()?.(result);
    });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
  }

  /** Has the thread run one checkpoint now; resolves with its result. */
  checkpoint(): Promise<WalCheckpointResult> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#worker.postMessage('checkpoint');
    });
  }

  /** Stops the thread and waits until its connection is closed. */
  async close(): Promise<void> {
    // Referenced while we wait: with the servers already closed, an unref'd worker is the only
    // handle left, and the process would exit (status 0) before `close` resolves, skipping the
    // caller's error report. That is how `serve` on a taken port exited silently.
    this.#worker.ref();
    this.#worker.postMessage('close');
    await this.#exited;
  }
}
