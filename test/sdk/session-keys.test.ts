/** The SDK's session-key building blocks on their own: the in-memory key, generations, throttling. */
import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isThrottling, memorySessionSigner, nextGeneration, TesseraError } from '@tessera-broker/sdk';

describe('session keys (SDK)', () => {
  it('keeps the session private key out of reach: the signer holds no key material but the public key', async () => {
    const signer = memorySessionSigner();
    expect(Object.keys(signer).sort()).toEqual(['publicKey', 'sign', 'uri']);
    const serialised = JSON.stringify(signer);
    expect(serialised).not.toMatch(/"d"|PRIVATE/);
    const signature = await signer.sign(new TextEncoder().encode('hello'));
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(signer.publicKey).toString('base64url') }, format: 'jwk' });
    expect(verify(null, new TextEncoder().encode('hello'), publicKey, Buffer.from(signature))).toBe(true);
    // Every session gets its own key.
    expect(Buffer.from(memorySessionSigner().publicKey)).not.toEqual(Buffer.from(signer.publicKey));
  });

  it('takes generations from the millisecond clock, strictly increasing even when the clock stands still or steps back', () => {
    const first = nextGeneration(2_000_000_000_000);
    expect(first).toBeGreaterThanOrEqual(2_000_000_000_000);
    expect(nextGeneration(2_000_000_000_000)).toBe(first + 1);
    expect(nextGeneration(1_000_000_000_000)).toBe(first + 2);
    // A later start (a restarted agent) is above everything before.
    expect(nextGeneration(3_000_000_000_000)).toBe(3_000_000_000_000);
  });

  it("recognises KMS's ThrottlingException by name, also as the cause of the signer's error", () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    expect(isThrottling(throttled)).toBe(true);
    expect(isThrottling(new TesseraError('key_store_error', 'KMS Sign failed: ThrottlingException', { cause: throttled }))).toBe(true);
    expect(isThrottling(new TesseraError('key_store_error', 'KMS Sign failed: AccessDeniedException', { cause: Object.assign(new Error('no'), { name: 'AccessDeniedException' }) }))).toBe(false);
  });
});
