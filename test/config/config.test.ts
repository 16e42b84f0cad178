/**
 * Invalid settings stop start-up with config_invalid naming the setting, before anything is
 * created — in-process, one case per setting; test/cli/quickstart.test.ts checks that the CLI
 * turns this into a message on stderr and a non-zero exit for `serve` and `init`.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { TesseraError } from '../../src/errors.js';

describe('invalid configuration names the setting', () => {
  const cases: [string, Parameters<typeof loadConfig>[0], Record<string, string>, string][] = [
    ['TESSERA_LISTEN', {}, { TESSERA_LISTEN: 'nonsense' }, 'TESSERA_LISTEN'],
    ['--listen', { listen: 'nonsense' }, {}, '--listen'],
    ['TESSERA_TICKET_TTL', {}, { TESSERA_TICKET_TTL: 'abc' }, 'TESSERA_TICKET_TTL'],
    ['TESSERA_TICKET_TTL above the maximum', {}, { TESSERA_TICKET_TTL: '2h', TESSERA_TICKET_MAX_TTL: '1h' }, 'TESSERA_TICKET_TTL'],
    ['TESSERA_LOG_LEVEL', {}, { TESSERA_LOG_LEVEL: 'loud' }, 'TESSERA_LOG_LEVEL'],
    ['TESSERA_DATABASE_URL', {}, { TESSERA_DATABASE_URL: 'mysql://x' }, 'TESSERA_DATABASE_URL'],
    ['TESSERA_KEYSTORE', {}, { TESSERA_KEYSTORE: 'vault' }, 'TESSERA_KEYSTORE'],
  ];

  it.each(cases)('%s', (_name, overrides, settings, setting) => {
    const dataDir = join(tmpdir(), `tessera-bad-config-${Math.random().toString(36).slice(2)}`);
    let thrown: unknown;
    try {
      loadConfig(overrides, { TESSERA_DATA_DIR: dataDir, ...settings });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TesseraError);
    expect(thrown).toMatchObject({ code: 'config_invalid', message: expect.stringContaining(setting) });
    // Rejected before anything was created.
    expect(existsSync(dataDir)).toBe(false);
  });

  it('accepts the defaults', () => {
    const dataDir = join(tmpdir(), `tessera-good-config-${Math.random().toString(36).slice(2)}`);
    expect(loadConfig({}, { TESSERA_DATA_DIR: dataDir })).toMatchObject({ dataDir, keystore: 'pkcs11', logLevel: 'info' });
  });
});
