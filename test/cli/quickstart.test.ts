/**
 * The quickstart as a user runs it: the compiled `tessera` CLI in child processes, a temporary data
 * directory and nothing else configured (embedded SoftHSM2 token, SQLite), then the same lifecycle
 * against the dev KMS endpoint.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BackgroundCli,
  type CliOptions,
  cliFails,
  cliJson,
  filesWithPemPrivateKey,
  modeOf,
  PEM_PRIVATE_KEY,
  runCli,
  startCli,
  stopAllCli,
  serveOn,
} from '../support/cli.js';
import { freePort, onFreePorts } from '../support/ports.js';

interface InitJson {
  dataDir: string;
  databaseUrl: string;
  keystore: string;
  authorityKeyUri: string;
  adminAddress: string;
  adminKeyUri: string;
  created: string[];
}

interface ProvisionJson {
  identity_id: string;
  address: string;
  key_uri: string;
  public_key: string;
  ticket: string;
  ticket_expires_at: string;
}

interface IdentityJson {
  identity_id: string;
  address: string;
  role: string;
  status: string;
  key_uri: string;
  public_key: string;
  attributes: Record<string, string>;
  enrolled_at: string | null;
  revoked_at: string | null;
  revocation_reason: string | null;
}

interface EnrollJson {
  identity_id: string;
  address: string;
  status: string;
  credential_file: string;
  credential_expires_at: string;
}

const TICKET = /^tkt_[A-Za-z0-9_-]{43}$/;
const BASE64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/;

/** `tessera: <code>: <message>` on stderr, nothing on stdout, non-zero exit. */
async function expectCliError(args: string[], options: CliOptions, code: string): Promise<string> {
  const result = await cliFails(args, options);
  expect(result.code).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(new RegExp(`^tessera: ${code}: \\S`, 'm'));
  return result.stderr;
}

const isFuture = (iso: string) => Number.isFinite(Date.parse(iso)) && Date.parse(iso) > Date.now();

let root: string;

/** A few CLI processes per test, each a Node start-up that loads the key store: seconds apiece on a busy machine. */
const CLI_TEST_TIMEOUT_MS = 120_000;

beforeAll(async () => {
  // dist/ (what the package's `bin` runs) was compiled from the current tree by the global setup.
  root = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
}, 120_000);

afterAll(async () => {
  await stopAllCli();
  if (root) {
    // Nothing may fall back to ./.tessera in the working directory when TESSERA_DATA_DIR is set.
    const stray = existsSync(join(root, '.tessera'));
    await rm(root, { recursive: true, force: true });
    expect(stray, 'a command created ./.tessera despite TESSERA_DATA_DIR').toBe(false);
  }
});

describe('tessera CLI quickstart (embedded SoftHSM2 token, SQLite)', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  let dataDir: string;
  let env: Record<string, string>;
  let clientEnv: Record<string, string>;
  let server: BackgroundCli;
  let brokerUrl: string;
  let provisioned: ProvisionJson;
  const address = 'billing-bot@acme.local';
  const run = (options: Partial<CliOptions> = {}): CliOptions => ({ cwd: root, env: clientEnv, ...options });

  beforeAll(() => {
    dataDir = join(root, 'pkcs11-data');
    env = { TESSERA_DATA_DIR: dataDir };
    clientEnv = env; // until the broker runs
  });

  it('prints help listing the commands', async () => {
    const result = await runCli(['--help'], { cwd: root });
    expect(result.code).toBe(0);
    for (const command of ['init', 'serve', 'provision', 'ticket', 'enroll', 'whoami', 'identity', 'dev']) {
      expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    }
  });

  it('init creates the authority key and admin identity, and is idempotent', async () => {
    const first = await cliJson<InitJson>(['init', '--json'], { cwd: root, env });
    expect(first).toMatchObject({
      dataDir,
      databaseUrl: `sqlite:${join(dataDir, 'tessera.db')}`,
      keystore: 'pkcs11',
      adminAddress: 'admin@tessera.local',
      created: ['authority key', 'wrapping key', 'admin identity'],
    });
    expect(first.authorityKeyUri).toMatch(/^pkcs11:/);
    expect(first.adminKeyUri).toMatch(/^pkcs11:/);
    expect(first.adminKeyUri).not.toBe(first.authorityKeyUri);

    // A second init creates nothing (its --json form is checked in the KMS block below).
    const human = await runCli(['init'], { cwd: root, env });
    expect(human.code).toBe(0);
    expect(human.stderr).toBe('');
    expect(human.stdout).toContain('already initialised; nothing created');
    expect(human.stdout).toContain(first.adminKeyUri);

    // Permissions: the data dir and the token's PIN are private to the user.
    expect(modeOf(dataDir)).toBe(0o700);
    expect(modeOf(join(dataDir, 'softhsm'))).toBe(0o700);
    expect(modeOf(join(dataDir, 'softhsm', 'user.pin'))).toBe(0o600);
    expect(modeOf(join(dataDir, 'softhsm', 'so.pin'))).toBe(0o600);
    expect(modeOf(join(dataDir, 'tessera.json'))).toBe(0o600);

    // No private key material in files or output; the PIN stays in its file.
    expect(filesWithPemPrivateKey(dataDir)).toEqual([]);
    const printed = JSON.stringify(first) + human.stdout;
    expect(printed).not.toMatch(PEM_PRIVATE_KEY);
    const pin = readFileSync(join(dataDir, 'softhsm', 'user.pin'), 'utf8').trim();
    expect(pin.length).toBeGreaterThanOrEqual(16);
    expect(printed).not.toContain(pin);
    expect(readFileSync(join(dataDir, 'tessera.json'), 'utf8')).not.toContain(pin);
  });

  it('serve answers /healthz on the requested address', async () => {
    server = await onFreePorts(2, ([port, proxyPort]) => {
      brokerUrl = `http://127.0.0.1:${port}`;
      return serveOn(brokerUrl, startCli(['serve', '--listen', `127.0.0.1:${port}`], { cwd: root, env: { ...env, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxyPort}` } }));
    });
    await server.waitForOutput((stdout) => stdout.includes('tessera broker listening on'));
    clientEnv = { ...env, TESSERA_URL: brokerUrl };
  });

  // The broker's side of each step (conflicts, ticket reuse and lifetimes, not_found, list filters,
  // refusals before enrollment and after revocation) is checked over HTTP in
  // test/identity/identity-flow.test.ts; here, what the CLI adds: flags, output, files, exit codes.
  it('provision registers the agent and issues a ticket', async () => {
    provisioned = await cliJson<ProvisionJson>(['provision', address, '--attr', 'team=payments', '--json'], run());
    expect(provisioned.address).toBe(address);
    expect(provisioned.identity_id).toMatch(BASE64URL_32_BYTES);
    expect(provisioned.key_uri).toMatch(/^pkcs11:/);
    expect(provisioned.public_key).toMatch(BASE64URL_32_BYTES);
    expect(provisioned.ticket).toMatch(TICKET);
    expect(isFuture(provisioned.ticket_expires_at)).toBe(true);
    // Default TESSERA_TICKET_TTL is 10 minutes.
    expect(Date.parse(provisioned.ticket_expires_at) - Date.now()).toBeLessThanOrEqual(10 * 60_000);
  });

  it('enroll redeems the ticket and stores a 0600 credential', async () => {
    const enrolled = await cliJson<EnrollJson>(['enroll', '--ticket', provisioned.ticket, '--key', provisioned.key_uri, '--json'], run());
    expect(enrolled).toMatchObject({ identity_id: provisioned.identity_id, address, status: 'active' });
    expect(isFuture(enrolled.credential_expires_at)).toBe(true);
    expect(existsSync(enrolled.credential_file)).toBe(true);
    expect(modeOf(enrolled.credential_file)).toBe(0o600);
    expect(readFileSync(enrolled.credential_file, 'utf8').trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/); // a compact JWT
  });

  it('whoami reports the enrolled identity', async () => {
    // The --json form is checked in the KMS block below.
    const human = await runCli(['whoami', '--key', provisioned.key_uri], run());
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(`${address} (${provisioned.identity_id}) role=agent status=active\n`);
  });

  it('ticket issues a new one-time ticket; bad lifetimes are refused naming the flag', async () => {
    const short = await cliJson<ProvisionJson>(['ticket', address, '--ttl', '90s', '--json'], run());
    expect(short).toMatchObject({ identity_id: provisioned.identity_id, address });
    expect(short.ticket).toMatch(TICKET);
    expect(short.ticket).not.toBe(provisioned.ticket);
    const lifetime = Date.parse(short.ticket_expires_at) - Date.now();
    expect(lifetime).toBeGreaterThan(60_000);
    expect(lifetime).toBeLessThanOrEqual(90_000);

    const stderr = await expectCliError(['ticket', address, '--ttl', 'soon', '--json'], run(), 'invalid_request');
    expect(stderr).toContain('--ttl must be a positive duration from 1s to 365d');
    const provisionStderr = await expectCliError(['provision', 'other@acme.local', '--ticket-ttl', '0s', '--json'], run(), 'invalid_request');
    expect(provisionStderr).toContain('--ticket-ttl must be a positive duration from 1s to 365d');
  });

  it('identity show and list', async () => {
    const shown = await cliJson<IdentityJson>(['identity', 'show', address, '--json'], run());
    expect(shown).toMatchObject({
      identity_id: provisioned.identity_id,
      address,
      status: 'active',
      key_uri: provisioned.key_uri,
      public_key: provisioned.public_key,
      attributes: { team: 'payments' },
      revoked_at: null,
    });
    expect(shown.enrolled_at).not.toBeNull();

    const human = await runCli(['identity', 'list'], run());
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^${address.replace(/\./g, '\\.')}\\s+active\\s+agent\\s+${provisioned.identity_id}$`, 'm'));
    expect(human.stdout).toMatch(/^admin@tessera\.local\s+active\s+admin\s/m);
  });

  it('revoke makes the next request fail with identity_revoked', async () => {
    const revoked = await cliJson<IdentityJson>(['identity', 'revoke', address, '--reason', 'test', '--json'], run());
    expect(revoked).toMatchObject({ address, status: 'revoked', revocation_reason: 'test' });
    expect(revoked.revoked_at).not.toBeNull();

    await expectCliError(['whoami', '--key', provisioned.key_uri, '--json'], run(), 'identity_revoked');
    const listed = await cliJson<IdentityJson[]>(['identity', 'list', '--status', 'revoked', '--json'], run());
    expect(listed.map((identity) => identity.address)).toEqual([address]);
  });

  it('client commands report an unreachable broker by code', async () => {
    const port = await freePort();
    await expectCliError(['identity', 'list', '--json'], run({ env: { ...env, TESSERA_URL: `http://127.0.0.1:${port}` } }), 'broker_unreachable');
  });

  it('nothing under the data dir holds a PEM private key after the whole flow', () => {
    expect(filesWithPemPrivateKey(dataDir)).toEqual([]);
    expect(server.output().stdout + server.output().stderr).not.toMatch(PEM_PRIVATE_KEY);
  });

  it('serve stops cleanly on SIGTERM', async () => {
    const how = await server.stop();
    expect(how).toEqual({ code: 0, signal: null });
    expect(server.output().stdout).toContain('"msg":"stopping"');
  });
});

describe('invalid configuration stops start-up naming the setting', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  // Each setting's validation is checked in-process in test/config/config.test.ts; here, that the
  // CLI (serve and init) stops by itself with the message, exit code 1 and nothing created.
  const cases: [string, string[], Record<string, string>, string][] = [
    ['--listen', ['serve', '--listen', 'nonsense'], {}, '--listen'],
    ['TESSERA_KEYSTORE', ['init'], { TESSERA_KEYSTORE: 'vault' }, 'TESSERA_KEYSTORE'],
    // It would hand out http://0.0.0.0:... as its public URL: no client reaches that.
    ['serve on every interface without a public URL', ['serve', '--listen', '0.0.0.0:8700'], {}, 'TESSERA_PUBLIC_URL'],
  ];

  it.each(cases)('%s', async (_name, args, settings, setting) => {
    const dataDir = join(root, `bad-config-${Math.random().toString(36).slice(2)}`);
    const result = await runCli(args, { cwd: root, env: { TESSERA_DATA_DIR: dataDir, ...settings }, timeoutMs: 60_000 });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull(); // exited by itself, not killed
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^tessera: config_invalid: /);
    expect(result.stderr).toContain(setting);
    // Rejected before anything was created.
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('tessera CLI with the dev KMS endpoint', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  let kms: BackgroundCli;
  let kmsEnv: Record<string, string>;
  let dataDir: string;
  let env: Record<string, string>;
  let brokerUrl: string;
  let server: BackgroundCli;
  let provisioned: ProvisionJson;
  const address = 'kms-bot@acme.local';
  const run = (): CliOptions => ({ cwd: root, env: { ...env, TESSERA_URL: brokerUrl } });

  beforeAll(async () => {
    kms = startCli(['dev', 'kms', '--listen', '127.0.0.1:0'], { cwd: root });
    let url = '';
    await kms.waitForOutput((stdout) => {
      url = /^Dev KMS listening on (http:\/\/\S+) \(region ([\w-]+)\)$/m.exec(stdout)?.[1] ?? '';
      return url !== '';
    });
    expect(kms.output().stdout).toContain(`AWS_ENDPOINT_URL_KMS=${url}`);
    kmsEnv = { AWS_ENDPOINT_URL_KMS: url, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };
    dataDir = join(root, 'kms-data');
    env = { TESSERA_DATA_DIR: dataDir, ...kmsEnv };
  });

  afterAll(async () => {
    await server?.stop();
    await kms?.stop();
  });

  it('init --keystore kms puts the authority and admin keys in KMS', async () => {
    const report = await cliJson<InitJson>(['init', '--keystore', 'kms', '--json'], { cwd: root, env });
    expect(report).toMatchObject({ keystore: 'kms', created: ['authority key', 'wrapping key', 'admin identity'] });
    expect(report.authorityKeyUri).toMatch(/^aws-kms:arn:aws:kms:us-east-1:/);
    expect(report.adminKeyUri).toMatch(/^aws-kms:arn:aws:kms:us-east-1:/);
    // No SoftHSM2 token is needed for KMS keys.
    expect(existsSync(join(dataDir, 'softhsm'))).toBe(false);
    expect(modeOf(dataDir)).toBe(0o700);

    // The choice is remembered: a plain second init uses KMS and creates nothing.
    const again = await cliJson<InitJson>(['init', '--json'], { cwd: root, env });
    expect(again).toMatchObject({ keystore: 'kms', adminKeyUri: report.adminKeyUri, created: [] });
  });

  it('serve starts with the KMS-held authority key', async () => {
    server = await onFreePorts(2, ([port, proxyPort]) => {
      brokerUrl = `http://127.0.0.1:${port}`;
      return serveOn(brokerUrl, startCli(['serve', '--listen', `127.0.0.1:${port}`], { cwd: root, env: { ...env, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxyPort}` } }));
    });
  });

  it('provision --keystore kms -> enroll -> whoami', async () => {
    provisioned = await cliJson<ProvisionJson>(['provision', address, '--keystore', 'kms', '--json'], run());
    expect(provisioned.key_uri).toMatch(/^aws-kms:arn:aws:kms:us-east-1:\d{12}:key\//);
    expect(provisioned.ticket).toMatch(TICKET);

    const enrolled = await cliJson<EnrollJson>(['enroll', '--ticket', provisioned.ticket, '--key', provisioned.key_uri, '--json'], run());
    expect(enrolled).toMatchObject({ address, status: 'active' });
    expect(modeOf(enrolled.credential_file)).toBe(0o600);

    const me = await cliJson<IdentityJson>(['whoami', '--key', provisioned.key_uri, '--json'], run());
    expect(me).toMatchObject({ address, identity_id: provisioned.identity_id, status: 'active' });

    // Revocation is key-store independent: the CLI smoke above and the kms rows of
    // test/identity/identity-flow.test.ts check it.
    expect(filesWithPemPrivateKey(dataDir)).toEqual([]);
  });

  it('the dev KMS and the broker stop on SIGTERM', async () => {
    expect(await server.stop()).toEqual({ code: 0, signal: null });
    expect(await kms.stop()).toEqual({ code: 0, signal: null });
    expect(kms.output().stdout).toContain('Dev KMS stopped (SIGTERM).');
  });
});
