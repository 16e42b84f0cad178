import type { JSONWebKeySet } from 'jose';
import type { Kysely, Selectable } from 'kysely';
import type { IssuerProfile, UserTokenAlgorithm } from '../../trust/issuer-profile.js';
import type { Database, TrustedIssuerTable } from '../schema.js';

/** Trusted issuer profiles, keyed by their exact `iss`. */
export interface TrustedIssuers {
  /** false when a profile for this issuer exists already (nothing is changed then) */
  add(profile: IssuerProfile): Promise<boolean>;
  get(issuer: string): Promise<IssuerProfile | undefined>;
  list(): Promise<IssuerProfile[]>;
  /** the removed profile, or undefined when there was none */
  remove(issuer: string): Promise<IssuerProfile | undefined>;
}

export class SqlTrustedIssuers implements TrustedIssuers {
  constructor(
    /** the store's writer, or a unit of work's transaction (a change and its audit event commit together) */
    private readonly db: Kysely<Database>,
    /** Store.reader: get() runs on every user token presented */
    private readonly reader: Kysely<Database> = db,
  ) {}

  async add(profile: IssuerProfile): Promise<boolean> {
    const inserted = await this.db
      .insertInto('trusted_issuers')
      .values(toRow(profile))
      .onConflict((conflict) => conflict.column('issuer').doNothing())
      .executeTakeFirst();
    return Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async get(issuer: string): Promise<IssuerProfile | undefined> {
    const row = await this.reader.selectFrom('trusted_issuers').selectAll().where('issuer', '=', issuer).executeTakeFirst();
    return row && fromRow(row);
  }

  async list(): Promise<IssuerProfile[]> {
    return (await this.db.selectFrom('trusted_issuers').selectAll().orderBy('issuer').execute()).map(fromRow);
  }

  async remove(issuer: string): Promise<IssuerProfile | undefined> {
    const row = await this.db.deleteFrom('trusted_issuers').where('issuer', '=', issuer).returningAll().executeTakeFirst();
    return row && fromRow(row);
  }
}

function toRow(profile: IssuerProfile): Selectable<TrustedIssuerTable> {
  return {
    issuer: profile.issuer,
    audience: profile.audience,
    algorithms: JSON.stringify(profile.algorithms),
    jwks_url: 'jwksUrl' in profile.keys ? profile.keys.jwksUrl : null,
    jwks: 'jwks' in profile.keys ? JSON.stringify(profile.keys.jwks) : null,
    required_claims: JSON.stringify(profile.requiredClaims),
    created_at: profile.createdAt,
    created_by: profile.createdBy,
  };
}

function fromRow(row: Selectable<TrustedIssuerTable>): IssuerProfile {
  return {
    issuer: row.issuer,
    audience: row.audience,
    algorithms: JSON.parse(row.algorithms) as UserTokenAlgorithm[],
    keys: row.jwks_url !== null ? { jwksUrl: row.jwks_url } : { jwks: JSON.parse(row.jwks!) as JSONWebKeySet },
    requiredClaims: JSON.parse(row.required_claims) as Record<string, string>,
    createdAt: Number(row.created_at),
    createdBy: row.created_by,
  };
}
