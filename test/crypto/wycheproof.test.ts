import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { verifyEd25519 } from '../../src/crypto/ed25519.js';

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

describe('Ed25519 verification agrees with Wycheproof', () => {
  it('has every vector of the file', () => {
    expect(cases).toHaveLength(suite.numberOfTests);
    expect(cases.filter((c) => c.result === 'valid')).toHaveLength(88);
    expect(cases.filter((c) => c.result === 'invalid')).toHaveLength(63);
  });

  it.each(cases)('tcId $tcId ($result) $comment', ({ pk, msg, sig, result }) => {
    expect(verifyEd25519(hex(sig), hex(msg), hex(pk))).toBe(result === 'valid');
  });
});
