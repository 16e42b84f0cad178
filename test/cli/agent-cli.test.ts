/**
 * The compiled CLI as a newcomer meets it, against a real broker (SoftHSM2, SQLite) and its real
 * credential proxy: the identity key from TESSERA_KEY and remembered at enroll, the data dir found
 * the same way from any directory, and every error message that once misled (issue 12).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProvisionResult } from '../../provisioner/provision.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type CliOptions, cliFails, cliJson, modeOf, REPO_ROOT, runCli } from '../support/cli.js';

const ADDRESS = 'newcomer@test.local';

// A dozen CLI processes, each a Node start-up that opens the key store: seconds apiece on a busy machine.
describe('tessera CLI: identity key, data dir, messages', { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let agent: ProvisionResult;
  let dir: string;
  let xdgDataHome: string;
  let proxyUrl: string;
  /** The broker's key store and URL, but no data dir: each test says which one it uses. */
  let base: Record<string, string | undefined>;

  /** `tessera: <code>: <message>` on stderr, nothing on stdout. */
  async function expectError(args: string[], options: CliOptions, code: string): Promise<string> {
    const result = await cliFails(args, options);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`^tessera: ${code}: \\S`, 'm'));
    return result.stderr;
  }

  /** commander's usage errors: `error: ...` on stderr, exit 1, before anything runs. */
  async function expectUsageError(args: string[], options: CliOptions = {}): Promise<string> {
    const result = await cliFails(args, options);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    return result.stderr;
  }

  beforeAll(async () => {
    broker = await startTestBroker();
    proxyUrl = `http://127.0.0.1:${await broker.broker.proxy.listen({ host: '127.0.0.1', port: 0 })}`;
    agent = await broker.provision(ADDRESS);
    dir = await mkdtemp(join(tmpdir(), 'tessera-agent-cli-'));
    xdgDataHome = join(dir, 'xdg-data');
    await mkdir(join(dir, 'elsewhere'));
    base = { ...broker.cliEnv, TESSERA_DATA_DIR: undefined, TESSERA_URL: broker.url };
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--version prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const result = await runCli([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${version}\n`);
    }
  });

  it('enroll takes the key from TESSERA_KEY and remembers it in the user data dir', async () => {
    const enrolled = await cliJson<{ address: string; key_uri: string }>(['enroll', '--ticket', agent.ticket, '--json'], {
      cwd: dir,
      env: { ...base, XDG_DATA_HOME: xdgDataHome, TESSERA_KEY: agent.key_uri },
    });
    expect(enrolled).toMatchObject({ address: ADDRESS, key_uri: agent.key_uri });
    const stateFile = join(xdgDataHome, 'tessera', 'tessera.json');
    expect(JSON.parse(readFileSync(stateFile, 'utf8'))).toEqual({ identityKeyUri: agent.key_uri });
    expect(modeOf(stateFile)).toBe(0o600);
    expect(modeOf(join(xdgDataHome, 'tessera'))).toBe(0o700);
    // Nothing was written to the working directory.
    expect(existsSync(join(dir, '.tessera'))).toBe(false);
  });

  it('later agent commands from any directory need no --key; --key and TESSERA_KEY override the remembered one', async () => {
    const fromElsewhere = { cwd: join(dir, 'elsewhere'), env: { ...base, XDG_DATA_HOME: xdgDataHome } };
    const me = await cliJson<{ address: string }>(['whoami', '--json'], fromElsewhere);
    expect(me.address).toBe(ADDRESS);

    const adminKey = broker.config.adminKeyUri!;
    const byFlag = await cliJson<{ address: string }>(['whoami', '--key', adminKey, '--json'], fromElsewhere);
    expect(byFlag.address).toBe('admin@tessera.local');
    const byEnv = await cliJson<{ address: string }>(['whoami', '--json'], { ...fromElsewhere, env: { ...fromElsewhere.env, TESSERA_KEY: adminKey } });
    expect(byEnv.address).toBe('admin@tessera.local');
  });

  it('without any key, says the three ways to give one', async () => {
    const empty = join(dir, 'empty-data-dir');
    const stderr = await expectError(['whoami'], { cwd: dir, env: { ...base, TESSERA_DATA_DIR: empty } }, 'invalid_request');
    expect(stderr).toContain('pass --key <uri>, set TESSERA_KEY, or run "tessera enroll --key <uri>"');
    expect(stderr).toContain(empty);
  });

  it('--broker accepts host:port; anything else but http(s) is named', async () => {
    const run = { cwd: dir, env: { ...base, XDG_DATA_HOME: xdgDataHome } };
    const me = await cliJson<{ address: string }>(['--broker', broker.url.replace(/^http:\/\//, ''), 'whoami', '--json'], run);
    expect(me.address).toBe(ADDRESS);
    // Was: `unknown scheme` from fetch.
    const stderr = await expectError(['--broker', 'ftp://127.0.0.1:8700', 'whoami'], run, 'config_invalid');
    expect(stderr).toContain("--broker expects the broker's URL, http(s)://host:port or host:port");
  });

  it('pointed at the credential proxy, says it is not a broker (was: [object Object]: Unauthorized)', async () => {
    const stderr = await expectError(['--broker', proxyUrl, 'whoami'], { cwd: dir, env: { ...base, XDG_DATA_HOME: xdgDataHome } }, 'broker_unreachable');
    expect(stderr).toContain(`${proxyUrl} is not a Tessera broker`);
    expect(stderr).toContain('401');
    expect(stderr).toContain('not at the credential proxy');
    expect(stderr).not.toContain('[object Object]');
  });

  it('a mistyped option is unknown, with a suggestion (was: missing --role)', async () => {
    const stderr = await expectUsageError(['lease', 'orders', '--rol', 'readonly'], { cwd: dir, env: base });
    expect(stderr).toContain("error: unknown option '--rol'");
    expect(stderr).toContain('Did you mean --role?');
    expect(stderr).not.toContain('required option');
    // A required option that is really missing is still reported.
    expect(await expectUsageError(['lease', 'orders'], { cwd: dir, env: base })).toContain("error: required option '--role <role>' not specified");
  });

  it('a mistyped subcommand is unknown, with a suggestion (was: read as a backend name)', async () => {
    const stderr = await expectUsageError(['lease', 'renw', 'lse_x'], { cwd: dir, env: base });
    expect(stderr).toContain("error: unknown command 'renw' (did you mean renew?)");
    expect(stderr).toContain('tessera lease issue renw');
  });

  it('--ttl 0 asks for a positive duration (was: "whole number of seconds"); too long names the flag (was: body/ttl_seconds)', async () => {
    for (const ttl of ['0', '0s', '1500ms', '366d']) {
      const stderr = await expectError(['lease', 'orders', '--role', 'reader', '--ttl', ttl], { cwd: dir, env: base }, 'invalid_request');
      expect(stderr).toContain(`--ttl must be a positive duration from 1s to 365d, such as 90s, 15m or 1h (got "${ttl}")`);
      expect(stderr).not.toMatch(/whole number|ttl_seconds/);
    }
  });

  it('grant names its flags, not the API fields (was: default_ttl_seconds must not exceed max_ttl_seconds)', async () => {
    const stderr = await expectError(['grant', ADDRESS, 'orders', '--role', 'reader', '--max-ttl', '1h', '--default-ttl', '2h'], { cwd: dir, env: broker.cliEnv }, 'invalid_request');
    expect(stderr).toContain('--default-ttl (2h) must not exceed --max-ttl (1h)');
    expect(stderr).not.toContain('_seconds');
  });

  it('a KMS key without AWS settings reports what the SDK said (was: KMS GetPublicKey failed: Error)', async () => {
    const noAwsConfig = join(dir, 'no-aws-config');
    const stderr = await expectError(
      ['whoami', '--key', 'aws-kms:arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000'],
      { cwd: dir, env: { ...base, XDG_DATA_HOME: xdgDataHome, AWS_CONFIG_FILE: noAwsConfig, AWS_SHARED_CREDENTIALS_FILE: noAwsConfig } },
      'key_store_error',
    );
    expect(stderr).toMatch(/KMS GetPublicKey failed: .*Region is missing/);
  });

  it('a listen port above 65535 is blamed on TESSERA_LISTEN (was: TESSERA_PUBLIC_URL)', async () => {
    const stderr = await expectError(['serve'], { cwd: dir, env: { ...broker.cliEnv, TESSERA_LISTEN: '127.0.0.1:99999' } }, 'config_invalid');
    expect(stderr).toContain('Invalid setting TESSERA_LISTEN (--listen): the port must be 1 to 65535');
    expect(stderr).not.toContain('TESSERA_PUBLIC_URL');
  });
});
