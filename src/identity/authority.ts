import type { JWK } from 'jose';
import type { Clock } from '../clock.js';
import { ed25519PublicJwk, keyThumbprint, signCompactJws } from '@tessera-broker/sdk';
import type { Signer } from '../keys/key-store.js';
import type { Identity } from './identity.js';

export const CREDENTIAL_TYPE = 'tessera-identity+jwt';

/**
 * The broker's authority key (held in KMS/HSM) and what it signs: identity credentials handed out
 * at enrollment, verifiable by anyone against /.well-known/jwks.json.
 */
export class Authority {
  private constructor(
    private readonly signer: Signer,
    readonly kid: string,
    private readonly issuer: string,
    private readonly clock: Clock,
    private readonly credentialTtlSeconds: number,
  ) {}

  static async create(signer: Signer, issuer: string, clock: Clock, credentialTtlSeconds: number): Promise<Authority> {
    return new Authority(signer, await keyThumbprint(signer.publicKey), issuer, clock, credentialTtlSeconds);
  }

  get keyUri(): string {
    return this.signer.uri;
  }

  jwks(): { keys: JWK[] } {
    return { keys: [{ ...ed25519PublicJwk(this.signer.publicKey), kid: this.kid, alg: 'EdDSA', use: 'sig' }] };
  }

  /** A JWT naming the identity, bound (RFC 7800 cnf.jkt) to the identity key that must sign its proofs. */
  async issueCredential(identity: Identity): Promise<{ token: string; expiresAt: number }> {
    const iat = Math.floor(this.clock.now() / 1000);
    const exp = iat + this.credentialTtlSeconds;
    const token = await signCompactJws(
      this.signer,
      { alg: 'EdDSA', typ: CREDENTIAL_TYPE, kid: this.kid },
      {
        iss: this.issuer,
        sub: identity.id,
        aud: this.issuer,
        iat,
        exp,
        address: identity.address,
        role: identity.role,
        attributes: identity.attributes,
        cnf: { jkt: identity.id },
      },
    );
    return { token, expiresAt: exp * 1000 };
  }
}
