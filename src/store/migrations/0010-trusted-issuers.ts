import type { Kysely, Migration } from 'kysely';

/**
 * Trusted issuers (src/trust/): one row per OpenID Connect / JWT identity provider whose user tokens
 * the broker accepts, keyed by its exact `iss`. Keys come from `jwks_url` or the static `jwks`
 * (exactly one is set); lists and claim maps are JSON text. Grants gain
 * `required_user_claims`: leases under such a grant must act for a user carrying those claims.
 */
export function trustedIssuers(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('trusted_issuers')
        .addColumn('issuer', 'text', (c) => c.primaryKey())
        .addColumn('audience', 'text', (c) => c.notNull())
        .addColumn('algorithms', 'text', (c) => c.notNull())
        .addColumn('jwks_url', 'text')
        .addColumn('jwks', 'text')
        .addColumn('required_claims', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .execute();
      // JSON object claim -> value: leases under the grant must act for a user carrying them.
      await db.schema.alterTable('grants').addColumn('required_user_claims', 'text', (c) => c.notNull().defaultTo('{}')).execute();
    },
  };
}
