/**
 * Invalid settings stop start-up with config_invalid naming the setting, before anything is
 * created — in-process, one case per setting; test/cli/quickstart.test.ts checks that the CLI
 * turns this into a message on stderr and a non-zero exit for `serve` and `init`.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultDataDir, loadConfig } from '../../src/config/config.js';
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
    // Once blamed on TESSERA_PUBLIC_URL, which is derived from it.
    ['TESSERA_LISTEN with a port above 65535', {}, { TESSERA_LISTEN: '127.0.0.1:99999' }, 'TESSERA_LISTEN (--listen): the port must be 1 to 65535'],
    ['TESSERA_TRUSTED_PROXIES naming no address', {}, { TESSERA_TRUSTED_PROXIES: '10.0.0.1, lb.internal' }, 'TESSERA_TRUSTED_PROXIES'],
    ['TESSERA_TRUSTED_PROXIES with a bad range', {}, { TESSERA_TRUSTED_PROXIES: '10.0.0.0/33' }, 'TESSERA_TRUSTED_PROXIES'],
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
    // No proxy is trusted unless named: X-Forwarded-For is anyone's to write.
    expect(loadConfig({}, { TESSERA_DATA_DIR: dataDir })).toMatchObject({ dataDir, keystore: 'pkcs11', logLevel: 'info', trustedProxies: [] });
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

describe('the data dir', () => {
  it('is --data-dir, then TESSERA_DATA_DIR, then the user data dir, whatever the working directory', () => {
    const env = { TESSERA_DATA_DIR: '/srv/tessera', XDG_DATA_HOME: '/home/u/.data', HOME: '/home/u' };
    expect(loadConfig({ dataDir: '/opt/flag' }, env).dataDir).toBe('/opt/flag');
    expect(loadConfig({}, env).dataDir).toBe('/srv/tessera');
    expect(loadConfig({}, { XDG_DATA_HOME: '/home/u/.data', HOME: '/home/u' }).dataDir).toBe('/home/u/.data/tessera');
  });

  it('defaults to $XDG_DATA_HOME/tessera, else ~/.local/share/tessera (a relative XDG_DATA_HOME is ignored)', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/x/data', HOME: '/home/u' })).toBe('/x/data/tessera');
    expect(defaultDataDir({ HOME: '/home/u' })).toBe('/home/u/.local/share/tessera');
    expect(defaultDataDir({ XDG_DATA_HOME: 'relative/data', HOME: '/home/u' })).toBe('/home/u/.local/share/tessera');
  });
});
