import { describe, expect, it } from 'vitest';
import { verifyEd25519 } from '../../src/crypto/ed25519.js';
import { isTesseraError } from '../../src/errors.js';
import type { KeyStore } from '../../src/keys/key-store.js';

/**
 * The behaviour every key store must show. Each implementation's test file calls this with a
 * factory that opens a store against a real backend (SoftHSM2 token, local KMS endpoint).
 */
export function describeKeyStoreContract(name: string, open: () => Promise<KeyStore>): void {
  describe(`KeyStore contract: ${name}`, () => {
    const unique = () => `contract-${Date.now()}-${Math.random().toString(36).slice(2)}`;

    it('creates an Ed25519 key whose signatures verify under its public key', async () => {
      const store = await open();
      try {
        const signer = await store.createSigningKey({ label: unique(), tags: { 'tessera:address': 'a@b.c' } });
        expect(signer.publicKey).toHaveLength(32);
        expect(store.handles(signer.uri)).toBe(true);
        const message = new TextEncoder().encode('proof bytes');
        const signature = await signer.sign(message);
        expect(signature).toHaveLength(64);
        expect(verifyEd25519(signature, message, signer.publicKey)).toBe(true);
        expect(verifyEd25519(signature, new TextEncoder().encode('other'), signer.publicKey)).toBe(false);
      } finally {
        await store.close();
      }
    });

    it('reopens a key by URI with the same public key', async () => {
      const store = await open();
      try {
        const created = await store.createSigningKey({ label: unique() });
        const reopened = await store.getSigner(created.uri);
        expect(Buffer.from(reopened.publicKey)).toEqual(Buffer.from(created.publicKey));
        const message = new Uint8Array([1, 2, 3]);
        expect(verifyEd25519(await reopened.sign(message), message, created.publicKey)).toBe(true);
      } finally {
        await store.close();
      }
    });

    it('gives distinct keys for distinct labels', async () => {
      const store = await open();
      try {
        const a = await store.createSigningKey({ label: unique() });
        const b = await store.createSigningKey({ label: unique() });
        expect(a.uri).not.toBe(b.uri);
        expect(Buffer.from(a.publicKey)).not.toEqual(Buffer.from(b.publicKey));
      } finally {
        await store.close();
      }
    });

    it('reports an unknown key as key_not_found', async () => {
      const store = await open();
      try {
        const created = await store.createSigningKey({ label: unique() });
        const missing = created.uri.replace(/.{6}$/, 'zzzzzz');
        await expect(store.getSigner(missing)).rejects.toSatisfy((e) => isTesseraError(e, 'key_not_found'));
      } finally {
        await store.close();
      }
    });

    it('wraps and unwraps data keys with a key that stays in the store', async () => {
      const store = await open();
      try {
        const wrapping = await store.createWrappingKey({ label: unique() });
        const dataKey = new Uint8Array(32).map((_, i) => i);
        const wrapped = await wrapping.wrap(dataKey);
        expect(Buffer.from(wrapped).includes(Buffer.from(dataKey))).toBe(false);
        const reopened = await store.getWrappingKey(wrapping.uri);
        expect(Buffer.from(await reopened.unwrap(wrapped))).toEqual(Buffer.from(dataKey));
        const tampered = Uint8Array.from(wrapped);
        tampered[tampered.length - 1]! ^= 1;
        await expect(reopened.unwrap(tampered)).rejects.toThrow();
      } finally {
        await store.close();
      }
    });

    it('never exposes private key material on the signer handle', async () => {
      const store = await open();
      try {
        const signer = await store.createSigningKey({ label: unique() });
        expect(Object.keys(signer).sort()).toEqual(expect.not.arrayContaining(['privateKey', 'secretKey', 'seed']));
        expect(JSON.stringify(signer)).not.toMatch(/private|secret|seed/i);
        expect(store.describe()).not.toMatch(/pin=|secret/i);
      } finally {
        await store.close();
      }
    });
  });
}
