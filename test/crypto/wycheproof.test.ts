import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Ed25519Verifier, verifyEd25519, verifyEd25519Portable } from '../../src/crypto/ed25519.js';
import { NON_CANONICAL_LARGE_ORDER, SMALL_ORDER_CANONICAL, SMALL_ORDER_NON_CANONICAL } from '../support/ed25519-small-order.js';

interface Vector {
  tcId: number;
  comment: string;
  msg: string;
  sig: string;
  result: 'valid' | 'invalid';
}
interface Suite {
  numberOfTests: number;
  testGroups: { publicKey: { pk: string }; tests: Vector[] }[];
}

const vectorFile = fileURLToPath(new URL('../../../shared/vectors/wycheproof-ed25519_test.json', import.meta.url));
const suite = JSON.parse(readFileSync(vectorFile, 'utf8')) as Suite;
const cases = suite.testGroups.flatMap((group) => group.tests.map((test) => ({ ...test, pk: group.publicKey.pk })));
const hex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));

/** Every Ed25519 verifier the project ships: the broker's (node:crypto) and the portable one (noble). */
const VERIFIERS: [string, Ed25519Verifier][] = [
  ['node:crypto (broker)', verifyEd25519],
  ['noble strict (portable)', verifyEd25519Portable],
];

describe('the Wycheproof file', () => {
  it('has every vector', () => {
    expect(cases).toHaveLength(suite.numberOfTests);
    expect(cases.filter((c) => c.result === 'valid')).toHaveLength(88);
    expect(cases.filter((c) => c.result === 'invalid')).toHaveLength(63);
  });
});

describe.each(VERIFIERS)('%s', (_name, verifyWith) => {
  it.each(cases)('agrees with Wycheproof on tcId $tcId ($result) $comment', ({ pk, msg, sig, result }) => {
    expect(verifyWith(hex(sig), hex(msg), hex(pk))).toBe(result === 'valid');
  });

  it('refuses every small-order or non-canonical public key, even where plain OpenSSL accepts', () => {
    // R = identity, S = 0: [S]B = R + [k]A holds for A = identity whatever the message.
    const forged = hex('01'.padEnd(64, '0') + '00'.repeat(32));
    const message = new TextEncoder().encode('anything at all');
    const rawOpenSsl = (pk: string) => verify(null, message, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pk, 'hex').toString('base64url') }, format: 'jwk' }), forged);
    expect(rawOpenSsl(SMALL_ORDER_CANONICAL[0]!)).toBe(true);
    expect(rawOpenSsl(SMALL_ORDER_NON_CANONICAL[2]!)).toBe(true);
    for (const pk of [...SMALL_ORDER_CANONICAL, ...SMALL_ORDER_NON_CANONICAL, NON_CANONICAL_LARGE_ORDER]) {
      expect(verifyWith(forged, message, hex(pk)), pk).toBe(false);
    }
  });
});
