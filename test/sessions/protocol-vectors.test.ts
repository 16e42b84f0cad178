/** The session-key test vectors of docs/PROTOCOL.md §3.1, rebuilt with the SDK and checked as the broker checks them. */
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bodyHash, createSessionCertificate, keyThumbprint, PROOF_SCHEME, signCompactJws, type Signer } from '@tessera-broker/sdk';
import { checkProof, parseProofHeader } from '../../src/identity/proof.js';
import { verifySessionCertificate } from '../../src/sessions/certificate.js';

const protocol = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const block = (name: string) => new RegExp(`\`\`\`${name}\\n([^\\n]+)\\n\`\`\``).exec(protocol)?.[1];

/** An Ed25519 key from its RFC 8032 seed (PKCS#8: a fixed prefix, then the seed). */
function seedSigner(seedHex: string): Signer {
  const key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]), format: 'der', type: 'pkcs8' });
  return {
    uri: 'memory:vector',
    publicKey: new Uint8Array(Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url')),
    sign: async (data) => new Uint8Array(sign(null, data, key)),
  };
}

const primary = seedSigner('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
const session = seedSigner('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb');
const AUDIENCE = 'https://broker.example';

describe('docs/PROTOCOL.md §3.1 test vectors', () => {
  it('the session certificate is what the SDK signs, and the broker accepts it for the session id given', async () => {
    const identityId = await keyThumbprint(primary.publicKey);
    expect(identityId).toBe('kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
    const documented = block('session-certificate');
    expect(documented).toBe(await createSessionCertificate(primary, identityId, session.publicKey, { iat: 1764072000, exp: 1764072900, gen: 1764072000000 }));
    const keyOf = (publicKey: Uint8Array) => (keyId: string) => (keyId === identityId ? publicKey : undefined);
    const verified = await verifySessionCertificate(documented!, keyOf(primary.publicKey));
    expect(verified).toMatchObject({ sessionId: 'ses_FtIu-VbGrfe_KB6CH7GNwODB72MNxj_ml11dEvO-7kk', keyId: identityId, iat: 1764072000, exp: 1764072900, generation: 1764072000000 });
    // Signed by another key (the session key itself), it is refused.
    await expect(verifySessionCertificate(documented!, keyOf(session.publicKey))).rejects.toMatchObject({ code: 'session_certificate_invalid' });
  });

  it('the session proof is the §3 proof with the session id as kid, and verifies under the session key', async () => {
    const identityId = await keyThumbprint(primary.publicKey);
    const sessionId = 'ses_FtIu-VbGrfe_KB6CH7GNwODB72MNxj_ml11dEvO-7kk';
    const claims = { iss: identityId, aud: AUDIENCE, iat: 1764072060, jti: '6f1d7a52-3c1e-4f5b-9a0e-2b8d4c7e9f10', htm: 'GET', htu: `${AUDIENCE}/v1/whoami`, bh: bodyHash('') };
    const documented = block('session-proof');
    expect(documented).toBe(await signCompactJws(session, { alg: 'EdDSA', typ: 'tessera-proof+jwt', kid: sessionId }, claims));
    const parsed = parseProofHeader(`${PROOF_SCHEME} ${documented}`);
    expect(parsed.kid).toBe(sessionId);
    const expected = { audience: AUDIENCE, method: 'GET', url: `${AUDIENCE}/v1/whoami`, bodyHash: bodyHash(''), nowSeconds: 1764072060 };
    expect(() => checkProof(parsed, session.publicKey, expected)).not.toThrow();
    expect(() => checkProof(parsed, primary.publicKey, expected)).toThrow(expect.objectContaining({ code: 'proof_bad_signature' }));
  });
});
