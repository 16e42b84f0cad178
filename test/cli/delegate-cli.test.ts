/**
 * The delegation commands of the compiled CLI, in child processes, against a real broker and a
 * real PostgreSQL upstream: delegate -> lease --delegation -> delegations list/show -> revoke.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ProvisionResult } from '../../provisioner/provision.js';
import type { DelegationView, LeaseResponse, PostgresCredential, RevokeDelegationResponse } from '@tessera-broker/sdk/wire';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type CliOptions, cliFails, cliJson, runCli } from '../support/cli.js';
import { loginFails } from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';

const ROOT = 'cli-root@test.local';
const HELPER = 'cli-helper@test.local';

describe('tessera delegate / delegations', { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let database: { url: string; drop(): Promise<void> };
  let dir: string;
  let run: CliOptions;
  let root: ProvisionResult;
  let helper: ProvisionResult;

  beforeAll(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase(inject('postgresUrl'));
    dir = await mkdtemp(join(tmpdir(), 'tessera-delegate-cli-'));
    run = { cwd: dir, env: broker.cliEnv };
    [root, helper] = [await broker.provision(ROOT), await broker.provision(HELPER)];
    for (const agent of [root, helper]) await (await broker.clientFor(agent.key_uri)).request('POST', '/v1/enroll', { ticket: agent.ticket });
    await broker.admin.request('POST', '/v1/admin/backends', { name: 'orders', type: 'postgres', connection_url: database.url });
    await broker.admin.request('POST', '/v1/admin/grants', { subject: ROOT, backend: 'orders', role: 'readonly', max_ttl_seconds: 3600 });
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    await database?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('delegates with the delegator\'s key, leases under the delegation, shows the chain and revokes it with its leases', async () => {
    const delegation = await cliJson<DelegationView>(['delegate', HELPER, '--backend', 'orders', '--role', 'readonly', '--ttl', '30m', '--purpose', 'nightly report', '--key', root.key_uri, '--json'], run);
    expect(delegation).toMatchObject({ delegator: ROOT, delegatee: HELPER, backend: 'orders', role: 'readonly', depth: 1, status: 'active', purpose: 'nightly report' });

    const lease = await cliJson<LeaseResponse<PostgresCredential> & { delegation_id: string }>(['lease', 'orders', '--role', 'readonly', '--delegation', delegation.delegation_id, '--key', helper.key_uri, '--json'], run);
    expect(lease).toMatchObject({ delegation_id: delegation.delegation_id, act: { sub: ROOT, act: { sub: HELPER } } });

    const listed = await runCli(['delegations', 'list'], run);
    expect(listed.stdout).toMatch(new RegExp(`^${delegation.delegation_id}\\s+${ROOT}\\s+${HELPER}\\s+orders\\s+readonly\\s+1\\s+active\\s`, 'm'));
    const shown = await runCli(['delegations', 'show', delegation.delegation_id, '--key', helper.key_uri], run);
    expect(shown.stdout).toContain('chain (root first):');
    expect(shown.stdout).toContain('"kind":"request-proof"');

    const wider = await cliFails(['delegate', ROOT, '--backend', 'orders', '--role', 'readonly', '--ttl', '2h', '--purpose', 'x', '--parent', delegation.delegation_id, '--key', helper.key_uri], run);
    expect(wider.stderr).toMatch(/^tessera: delegation_expiry_later: /m);

    const revoked = await cliJson<RevokeDelegationResponse>(['delegations', 'revoke', delegation.delegation_id, '--reason', 'done', '--key', root.key_uri, '--json'], run);
    expect(revoked).toMatchObject({ delegations_revoked: 1, leases: { revoked: 1, pending: 0 } });
    await loginFails(lease.credential);
  });
});
