import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/audit/canonical.js';
import { eventHash, GENESIS_HASH } from '../../src/audit/chain.js';

describe('canonical encoding', () => {
  it('matches the RFC 8785 §3.2.3 example', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    ) as unknown;
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('sorts members by UTF-16 code units', () => {
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, a: { c: 1, b: 2 } })).toBe('{"\\r":2,"a":{"b":2,"c":1},"€":1,"😀":3}');
  });

  it('hashes the documented test vector (docs/PROTOCOL.md §7.1)', () => {
    const event = {
      seq: 1, at: 1764072000000, actor: null, action: 'identity.registered', outcome: 'success' as const, identity_id: 'abc',
      reason: null, details: { address: 'bot@acme.local', role: 'agent' }, proof: null, prev_hash: GENESIS_HASH,
    };
    expect(eventHash(event)).toBe(VECTOR);
  });
});

// SHA-256 of the canonical text shown in docs/PROTOCOL.md §7.1, computed independently of canonicalJson().
const VECTOR = '20f3375eda4f1d39e251e45adc963957ef3d0220fb5fe9cd5599a182d6754f6c';
