/**
 * Passwords for PostgreSQL logins and the SCRAM-SHA-256 verifiers PostgreSQL stores for them
 * (RFC 5802/7677). Sending the verifier keeps the plaintext out of the server and its statement
 * log, and spares the server one of its two PBKDF2 runs per CREATE ROLE.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * PBKDF2 stretching protects guessable passwords; ours are 256 random bits, which no number of
 * iterations makes harder to guess. PostgreSQL's default (4096) would cost ~1 ms of broker CPU per
 * lease and the same again in every agent's login, for no gain. 256 costs ~0.08 ms, which
 * ScramPasswords moves off the event loop.
 */
const SCRAM_ITERATIONS = 256;
const SALTED_BYTES = 32;

export interface ScramPassword {
  /** base64url, so SASLprep leaves it unchanged */
  readonly password: string;
  readonly verifier: string;
}

/** The verifier PostgreSQL would store for `password`, computed now. */
export function scramVerifier(password: string): string {
  const salt = randomBytes(16);
  return verifierOf(salt, pbkdf2Sync(password, salt, SCRAM_ITERATIONS, SALTED_BYTES, 'sha256'));
}

/** From SaltedPassword (PBKDF2 of the password), the rest of the verifier: three cheap digests. */
function verifierOf(salt: Uint8Array, salted: Uint8Array): string {
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest('base64');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64');
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${Buffer.from(salt).toString('base64')}$${storedKey}:${serverKey}`;
}

function freshPassword(): string {
  return randomBytes(32).toString('base64url');
}

/** SaltedPassword for each [password, salt] it is sent: the costly step, on its own thread. */
const SALTING_WORKER = `
const { parentPort } = require('node:worker_threads');
const { pbkdf2Sync } = require('node:crypto');
parentPort.on('message', ({ jobs, iterations, length }) =>
  parentPort.postMessage(jobs.map(([password, salt]) => pbkdf2Sync(password, salt, iterations, length, 'sha256'))));
`;

type SaltingJob = [password: string, salt: Uint8Array];

/**
 * A stock of fresh passwords with their verifiers, salted in batches on a worker thread and
 * topped up when half is used: a lease takes one without running PBKDF2 on the event loop. When
 * the stock is empty (the first leases, a burst, a failed worker) a password is made inline, so
 * nobody waits for the worker. Every password is handed out once.
 */
export class ScramPasswords {
  readonly #stock: ScramPassword[] = [];
  #worker: Worker | undefined;
  /** the batch being salted, if any */
  #salting: SaltingJob[] | undefined;

  constructor(private readonly batchSize = 64) {}

  /** How many passwords are ready. */
  get stocked(): number {
    return this.#stock.length;
  }

  take(): ScramPassword {
    if (this.#stock.length <= this.batchSize / 2) this.#topUp();
    const stocked = this.#stock.pop();
    if (stocked) return stocked;
    const password = freshPassword();
    return { password, verifier: scramVerifier(password) };
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    this.#salting = undefined;
    this.#stock.length = 0;
    await worker?.terminate();
  }

  #topUp(): void {
    if (this.#salting) return;
    const worker = (this.#worker ??= this.#startWorker());
    // One draw from the CSPRNG for the batch: 32 bytes of password and 16 of salt each.
    const random = randomBytes(this.batchSize * 48);
    this.#salting = Array.from({ length: this.batchSize }, (_, i): SaltingJob => [
      random.subarray(i * 48, i * 48 + 32).toString('base64url'),
      random.subarray(i * 48 + 32, i * 48 + 48),
    ]);
    worker.postMessage({ jobs: this.#salting, iterations: SCRAM_ITERATIONS, length: SALTED_BYTES });
  }

  #startWorker(): Worker {
    const worker = new Worker(SALTING_WORKER, { eval: true });
    // Only a lease waiting on it could keep the process alive, and none does.
    worker.unref();
    worker.on('message', (salted: Uint8Array[]) => {
      const jobs = this.#salting ?? [];
      this.#salting = undefined;
      jobs.forEach(([password, salt], i) => this.#stock.push({ password, verifier: verifierOf(salt, salted[i]!) }));
    });
    // A worker that failed is replaced on the next top-up; meanwhile passwords are made inline.
    const discard = () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#salting = undefined;
    };
    worker.on('error', discard);
    worker.on('exit', discard);
    return worker;
  }
}
