import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPinFile } from '@tessera-broker/sdk/signers';
import { ensureSoftHsmToken } from '../../src/keys/softhsm.js';

export interface TestToken {
  readonly dir: string;
  readonly confPath: string;
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly pin: string;
  /** Drops this user's claim; the token directory goes when the last user of the process cleans up. */
  cleanup(): Promise<void>;
}

type SharedToken = Omit<TestToken, 'cleanup'>;

// SOFTHSM2_CONF is process-global and read once at C_Initialize, so a test process (vitest runs
// each file in its own) shares one token, created on first use.
let shared: Promise<SharedToken> | undefined;
let users = 0;

async function createSharedToken(): Promise<SharedToken> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-softhsm-'));
  const token = await ensureSoftHsmToken({ dir, tokenLabel: 'tessera-test' });
  return { dir, confPath: token.confPath, modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: readPinFile(token.pinFile) };
}

/** A SoftHSM2 token in a temporary directory, shared by every caller in this test process. */
export async function createTestToken(): Promise<TestToken> {
  shared ??= createSharedToken().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  const token = await shared;
  users += 1;
  let released = false;
  return {
    ...token,
    async cleanup() {
      if (released) return;
      released = true;
      users -= 1;
      if (users > 0) return;
      shared = undefined;
      if (process.env.SOFTHSM2_CONF === token.confPath) delete process.env.SOFTHSM2_CONF;
      await rm(token.dir, { recursive: true, force: true });
    },
  };
}
