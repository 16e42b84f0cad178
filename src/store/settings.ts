import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Broker-wide facts shared by every broker on the same database (e.g. the authority key URI). */
export type SettingKey = 'authority_key_uri' | 'wrapping_key_uri';

export async function readSetting(db: Kysely<Database>, key: SettingKey): Promise<string | undefined> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value;
}

export async function writeSetting(db: Kysely<Database>, key: SettingKey, value: string): Promise<void> {
  await db
    .insertInto('settings')
    .values({ key, value })
    .onConflict((conflict) => conflict.column('key').doUpdateSet({ value }))
    .execute();
}
