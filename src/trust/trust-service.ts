import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { Store } from '../store/database.js';
import { type IssuerProfile, USER_TOKEN_ALGORITHMS, type UserTokenAlgorithm } from './issuer-profile.js';
import { checkJwks, checkJwksUrl } from './jwks.js';

export interface NewIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUrl?: string;
  readonly jwks?: unknown;
  /** default: all of USER_TOKEN_ALGORITHMS */
  readonly algorithms?: readonly UserTokenAlgorithm[];
  readonly requiredClaims?: Readonly<Record<string, string>>;
}

/** Which identity providers' user tokens the broker accepts (admin). Every change is audited. */
export class TrustService {
  constructor(
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
  ) {}

  async add(input: NewIssuer, actor: string): Promise<IssuerProfile> {
    if ((input.jwksUrl === undefined) === (input.jwks === undefined)) {
      throw new TesseraError('invalid_request', 'Give exactly one of jwks_url (--jwks-url) and jwks (--jwks-file).');
    }
    const profile: IssuerProfile = {
      issuer: checkIssuer(input.issuer),
      audience: input.audience,
      algorithms: input.algorithms ?? USER_TOKEN_ALGORITHMS,
      keys: input.jwksUrl !== undefined ? { jwksUrl: checkJwksUrl(input.jwksUrl) } : { jwks: checkJwks(input.jwks, 'The JWKS') },
      requiredClaims: input.requiredClaims ?? {},
      createdAt: this.clock.now(),
      createdBy: actor,
    };
    await this.store.transaction(async (repos) => {
      if (!(await repos.trustedIssuers.add(profile))) {
        throw new TesseraError('conflict', `Issuer ${profile.issuer} is trusted already; remove it first to change its profile.`);
      }
      await this.audit.append({ actor, action: 'issuer.trusted', outcome: 'success', details: issuerDetails(profile) }, repos);
    });
    return profile;
  }

  list(): Promise<IssuerProfile[]> {
    return this.store.repos.trustedIssuers.list();
  }

  async remove(issuer: string, actor: string): Promise<void> {
    await this.store.transaction(async (repos) => {
      const removed = await repos.trustedIssuers.remove(issuer);
      if (!removed) throw new TesseraError('not_found', `Issuer ${issuer} is not trusted.`);
      await this.audit.append({ actor, action: 'issuer.removed', outcome: 'success', details: issuerDetails(removed) }, repos);
    });
  }
}

/**
 * An issuer identifier is a URL (OpenID Connect: https, no query or fragment). It is compared
 * byte for byte with the token's `iss`, so it is stored exactly as given, not normalised.
 */
function checkIssuer(issuer: string): string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new TesseraError('invalid_request', `The issuer ${JSON.stringify(issuer)} is not a URL.`);
  }
  if (url.search !== '' || url.hash !== '' || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new TesseraError('invalid_request', `The issuer ${issuer} must be an http(s) URL without query or fragment.`);
  }
  return issuer;
}

/** What an audit event records of a profile: no key material beyond the key ids. */
export const issuerDetails = (profile: IssuerProfile) => ({
  issuer: profile.issuer,
  audience: profile.audience,
  algorithms: profile.algorithms,
  ...('jwksUrl' in profile.keys ? { jwks_url: profile.keys.jwksUrl } : { static_kids: staticKids(profile) }),
  required_claims: profile.requiredClaims,
});

export function staticKids(profile: IssuerProfile): string[] | null {
  return 'jwks' in profile.keys ? profile.keys.jwks.keys.map((key) => key.kid ?? '(no kid)') : null;
}
