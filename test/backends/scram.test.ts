import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ScramPassword, ScramPasswords, scramVerifier } from '../../src/backends/scram.js';

/** What PostgreSQL checks at login: the verifier's keys derive from the password with its salt and iterations. */
function expectVerifies({ password, verifier }: ScramPassword): void {
  const match = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(verifier);
  expect(match, verifier).not.toBeNull();
  const [, iterations, salt, storedKey, serverKey] = match!;
  const salted = pbkdf2Sync(password, Buffer.from(salt!, 'base64'), Number(iterations), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  expect(createHash('sha256').update(clientKey).digest('base64')).toBe(storedKey);
  expect(createHmac('sha256', salted).update('Server Key').digest('base64')).toBe(serverKey);
}

describe('SCRAM passwords', () => {
  let passwords: ScramPasswords | undefined;
  afterEach(async () => passwords?.close());

  it('scramVerifier derives the verifier PostgreSQL checks, with a fresh salt each time', () => {
    const first = scramVerifier('a-password');
    expectVerifies({ password: 'a-password', verifier: first });
    expect(scramVerifier('a-password')).not.toBe(first);
  });

  it('hands out each password once: made inline while the stock is empty, then from the worker', async () => {
    passwords = new ScramPasswords(8);
    const taken = [passwords.take()];
    expect(passwords.stocked).toBe(0);
    await vi.waitFor(() => expect(passwords!.stocked).toBe(8), { timeout: 30_000 });
    for (let i = 0; i < 40; i++) {
      taken.push(passwords.take());
      // Let the worker's top-ups land between takes, as they do between requests.
      if (i % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    for (const password of taken) expectVerifies(password);
    // 256 random bits, in base64url: SASLprep leaves it as it is.
    for (const { password } of taken) expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(taken.map((p) => p.password)).size).toBe(taken.length);
    expect(new Set(taken.map((p) => p.verifier)).size).toBe(taken.length);
  });

  it('keeps working after close: the next take makes a password inline and starts a new worker', async () => {
    passwords = new ScramPasswords(4);
    passwords.take();
    await vi.waitFor(() => expect(passwords!.stocked).toBe(4), { timeout: 30_000 });
    await passwords.close();
    expect(passwords.stocked).toBe(0);
    expectVerifies(passwords.take());
    await vi.waitFor(() => expect(passwords!.stocked).toBe(4), { timeout: 30_000 });
    expectVerifies(passwords.take());
  });
});
