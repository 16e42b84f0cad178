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
    // A public URL is handed to clients: a wildcard bind address is never one they can reach.
    ['TESSERA_PUBLIC_URL from a 0.0.0.0 listener', {}, { TESSERA_LISTEN: '0.0.0.0:8700' }, 'TESSERA_PUBLIC_URL'],
    ['TESSERA_PUBLIC_URL from a [::] listener', { listen: '[::]:8700' }, {}, 'TESSERA_PUBLIC_URL'],
    ['TESSERA_PROXY_PUBLIC_URL from a 0.0.0.0 listener', {}, { TESSERA_LISTEN: '0.0.0.0:8700', TESSERA_PUBLIC_URL: 'http://localhost:8700' }, 'TESSERA_PROXY_PUBLIC_URL'],
    ['TESSERA_PROXY_PUBLIC_URL from a 0.0.0.0 proxy listener', {}, { TESSERA_PROXY_LISTEN: '0.0.0.0:8701' }, 'TESSERA_PROXY_PUBLIC_URL'],
    ['TESSERA_PUBLIC_URL naming 0.0.0.0 as "0"', {}, { TESSERA_PUBLIC_URL: 'http://0:8700' }, 'TESSERA_PUBLIC_URL'],
    ['TESSERA_PROXY_PUBLIC_URL naming [::]', {}, { TESSERA_PROXY_PUBLIC_URL: 'http://[0::0]:8701' }, 'TESSERA_PROXY_PUBLIC_URL'],
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

  it('listens on every interface when the public URLs name a reachable host', () => {
    const dataDir = join(tmpdir(), `tessera-good-config-${Math.random().toString(36).slice(2)}`);
    const env = {
      TESSERA_DATA_DIR: dataDir,
      TESSERA_LISTEN: '0.0.0.0:8700',
      TESSERA_PUBLIC_URL: 'http://localhost:8700/',
      TESSERA_PROXY_PUBLIC_URL: 'http://localhost:8701',
    };
    expect(loadConfig({}, env)).toMatchObject({
      listen: '0.0.0.0:8700',
      proxyListen: '0.0.0.0:8701',
      publicUrl: 'http://localhost:8700',
      proxyPublicUrl: 'http://localhost:8701',
    });
  });
});
