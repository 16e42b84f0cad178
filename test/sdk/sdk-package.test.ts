/**
 * The SDK as an agent's project gets it: `npm pack` of packages/sdk installed with its pkcs11js
 * peer into an empty project outside the repo, and the plain JavaScript example
 * (packages/sdk/examples/lease.mjs) run there with node against a real broker leasing a real
 * PostgreSQL login. Configuration comes from the environment only (no data directory).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LeaseRecord } from '@tessera-broker/sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { cleanEnv, REPO_ROOT } from '../support/cli.js';
import { adminAgent, enrolledAgentWithKey, leaseRolesOf, seedUpstream, type TestAgent } from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';

const run = promisify(execFile);
const SDK_DIR = join(REPO_ROOT, 'packages', 'sdk');
const BACKEND = 'orders';
const ADDRESS = 'sdk-package@test.local';

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

describe('@tessera-broker/sdk, packed and installed outside the repo', () => {
  let dir: string;
  let project: string;
  let broker: TestBroker;
  let admin: TestAgent;
  let upstream: { url: string; drop(): Promise<void> };
  let agentEnv: Record<string, string>;

  /** `node lease.mjs ...` in the project, with only the given environment on top of a clean one. */
  async function example(args: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<Outcome> {
    return run(process.execPath, ['lease.mjs', ...args], { cwd: project, env: cleanEnv(env), timeout: 60_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
    );
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-sdk-pack-'));
    // dist/ is built by the test run's global setup (buildCli); rebuilding here would rewrite it under other suites.
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: SDK_DIR });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    project = join(dir, 'agent');
    await run('mkdir', [project]);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'agent', private: true, type: 'module' }));
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, filename), 'pkcs11js@^2.1.7'], { cwd: project, timeout: 600_000 });
    await copyFile(join(project, 'node_modules', '@tessera-broker', 'sdk', 'examples', 'lease.mjs'), join(project, 'lease.mjs'));

    upstream = await createTestDatabase(inject('postgresUrl'));
    await seedUpstream(upstream.url);
    broker = await startTestBroker();
    admin = await adminAgent(broker);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: BACKEND, type: 'postgres', connection_url: upstream.url });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: ADDRESS, backend: BACKEND, role: 'readonly', max_ttl_seconds: 3600 });
    const { keyUri } = await enrolledAgentWithKey(broker, ADDRESS);
    const pinFile = join(dir, 'user.pin');
    await writeFile(pinFile, `${broker.config.pkcs11.pin}\n`, { mode: 0o600 });
    agentEnv = {
      TESSERA_URL: broker.url,
      TESSERA_KEY: keyUri,
      TESSERA_PKCS11_MODULE: broker.config.pkcs11.module!,
      TESSERA_PKCS11_PIN_FILE: pinFile,
      SOFTHSM2_CONF: broker.cliEnv.SOFTHSM2_CONF!,
    };
  }, 900_000);

  afterAll(async () => {
    await broker?.close();
    await upstream?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('installs without any of the broker\'s dependencies', async () => {
    const installed = await readdir(join(project, 'node_modules'));
    expect(installed).toEqual(expect.arrayContaining(['@tessera-broker', 'pkcs11js']));
    for (const serverDependency of ['fastify', 'kysely', 'pg', 'better-sqlite3', '@aws-sdk', 'zod', 'pino']) expect(installed).not.toContain(serverDependency);
  });

  it('leases a PostgreSQL login, renews it, and revokes it', async () => {
    const { code, stdout, stderr } = await example([BACKEND, 'readonly', '--ttl', '3s', '--renewals', '1'], agentEnv);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const leaseId = /^leased (\S+): (\S+)@/m.exec(stdout)?.[1];
    expect(leaseId).toBeDefined();
    expect(stdout).toMatch(new RegExp(`^renewed ${leaseId}, expires `, 'm'));
    expect(stdout).toMatch(new RegExp(`^revoked ${leaseId}: revoked$`, 'm'));

    const { leases } = await admin.expect<{ leases: LeaseRecord[] }>(200, 'GET', `/v1/admin/leases?identity=${encodeURIComponent(ADDRESS)}`);
    expect(leases).toEqual([expect.objectContaining({ lease_id: leaseId, state: 'revoked' })]);
    const { events } = await admin.expect<{ events: { action: string }[] }>(200, 'GET', `/v1/admin/audit?lease=${leaseId}`);
    expect(events.map((event) => event.action)).toEqual(expect.arrayContaining(['lease.granted', 'lease.renewed', 'lease.revoked']));
    expect(await leaseRolesOf(upstream.url, BACKEND)).toEqual([]);
  });

  it('names what is missing: the broker, the key, the PIN, or the optional peer a key needs', async () => {
    const { TESSERA_URL: _url, ...noUrl } = agentEnv;
    const { TESSERA_KEY: _key, ...noKey } = agentEnv;
    const { TESSERA_PKCS11_PIN_FILE: _pin, ...noPin } = agentEnv;
    for (const [env, expected] of [
      [noUrl, /No broker URL .*set TESSERA_URL/],
      [noKey, /No identity key URI .*set TESSERA_KEY/],
      [noPin, /needs its user PIN: set TESSERA_PKCS11_PIN, or TESSERA_PKCS11_PIN_FILE/],
      // The optional peer this project did not install.
      [{ ...agentEnv, TESSERA_KEY: 'aws-kms:1234abcd-12ab-34cd-56ef-1234567890ab' }, /An aws-kms: key needs the package "@aws-sdk\/client-kms": run `npm install @aws-sdk\/client-kms`/],
    ] as const) {
      const { code, stderr } = await example([BACKEND, 'readonly'], env);
      expect(code).toBe(1);
      expect(stderr).toMatch(expected);
    }
  });
});
