import type { Kysely } from 'kysely';
import type { SealedSecret } from '../../secrets/envelope.js';
import type { Database } from '../schema.js';

/** The sealed root secrets of the backends (the backends table's secret columns), for wrapping-key rotation. */
export interface SealedSecretRepository {
  all(): Promise<{ backend: string; sealed: SealedSecret }[]>;
  /** Stores the backend's data key as re-wrapped under another key; the ciphertext stays. */
  rewrap(backend: string, sealed: SealedSecret): Promise<void>;
}

export class SqlSealedSecretRepository implements SealedSecretRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async all(): Promise<{ backend: string; sealed: SealedSecret }[]> {
    const rows = await this.db.selectFrom('backends').select(['name', 'sealed_secret', 'wrapped_key', 'wrapping_key_uri']).orderBy('name').execute();
    return rows.map((row) => ({ backend: row.name, sealed: { ciphertext: row.sealed_secret, wrappedKey: row.wrapped_key, wrappingKeyUri: row.wrapping_key_uri } }));
  }

  async rewrap(backend: string, sealed: SealedSecret): Promise<void> {
    await this.db.updateTable('backends').set({ wrapped_key: sealed.wrappedKey, wrapping_key_uri: sealed.wrappingKeyUri }).where('name', '=', backend).execute();
  }
}
