import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Broker-wide facts shared by every broker on the same database (e.g. the authority key URI). */
export type SettingKey = 'authority_key_uri' | 'wrapping_key_uri';

export interface SettingsRepository {
  get(key: SettingKey): Promise<string | undefined>;
  /** Sets it, replacing any value it had. */
  set(key: SettingKey, value: string): Promise<void>;
}

export class SqlSettingsRepository implements SettingsRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async get(key: SettingKey): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async set(key: SettingKey, value: string): Promise<void> {
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((conflict) => conflict.column('key').doUpdateSet({ value }))
      .execute();
  }
}
