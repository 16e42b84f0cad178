/**
 * `tessera trust add-issuer|list|remove`, `tessera act-for` and `tessera audit list --on-behalf-of`
 * through the compiled CLI in child processes: a static JWKS file, a user token file, and clear
 * errors (exit code 1, nothing stored) for a profile the broker must refuse.
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { IssuerView, UserDelegationView } from '@tessera-broker/sdk/wire';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type CliOptions, cliFails, cliJson } from '../support/cli.js';
import { type LocalIssuer, startLocalIssuer } from '../support/issuer.js';
import { createTestDatabase } from '../support/postgres.js';

const ADDRESS = 'helpdesk@test.local';

describe('tessera trust / act-for / audit list --on-behalf-of', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let issuer: LocalIssuer;
  let upstream: { url: string; drop(): Promise<void> };
  let dir: string;
  let run: CliOptions;
  let keyUri: string;
  let jwksFile: string;

  const trusted = async () => (await broker.admin.request<{ issuers: IssuerView[] }>('GET', '/v1/admin/trust/issuers')).issuers;

  beforeAll(async () => {
    upstream = await createTestDatabase(inject('postgresUrl'));
    [broker, issuer] = await Promise.all([startTestBroker(), startLocalIssuer('EdDSA')]);
    dir = await mkdtemp(join(tmpdir(), 'tessera-trust-cli-'));
    jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(issuer.jwks()));
    run = { cwd: dir, env: broker.cliEnv };
    const agent = await broker.provision(ADDRESS);
    await (await broker.clientFor(agent.key_uri)).request('POST', '/v1/enroll', { ticket: agent.ticket });
    keyUri = agent.key_uri;
    await broker.admin.request('POST', '/v1/admin/backends', { name: 'db', type: 'postgres', connection_url: upstream.url });
    await broker.admin.request('POST', '/v1/admin/grants', { subject: ADDRESS, backend: 'db', role: 'readonly', max_ttl_seconds: 3600 });
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    await issuer?.close();
    await upstream?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses a profile without exactly one key source, with an http JWKS URL off loopback, or with HS256', async () => {
    const base = ['trust', 'add-issuer', 'https://idp.example', '--audience', 'tessera'];
    expect((await cliFails(base, run)).stderr).toMatch(/^tessera: invalid_request: Give exactly one of --jwks-url and --jwks-file\./m);
    expect((await cliFails([...base, '--jwks-url', 'http://idp.example/jwks.json'], run)).stderr).toMatch(/^tessera: invalid_request: The JWKS URL must use https/m);
    expect((await cliFails([...base, '--jwks-file', jwksFile, '--alg', 'HS256'], run)).stderr).toMatch(/^tessera: invalid_request: --alg HS256 is not allowed; choose from EdDSA, ES256, RS256\./m);
    expect(await trusted()).toEqual([]);
  });

  it('trusts an issuer from a JWKS file, acts for its user, finds the user in audit, removes the issuer', async () => {
    const added = await cliJson<IssuerView>(['trust', 'add-issuer', issuer.issuer, '--jwks-file', jwksFile, '--audience', issuer.audience, '--claim', 'email_verified=true', '--json'], run);
    expect(added).toMatchObject({ issuer: issuer.issuer, jwks_url: null, static_kids: [issuer.jwks().keys[0]!.kid], required_claims: { email_verified: 'true' } });
    expect(await cliJson<IssuerView[]>(['trust', 'list', '--json'], run)).toEqual([added]);

    const tokenFile = join(dir, 'alice.jwt');
    writeFileSync(tokenFile, `${await issuer.token('alice', broker.clock.now(), { claims: { email_verified: true } })}\n`, { mode: 0o600 });
    const acting = await cliJson<UserDelegationView>(
      ['act-for', '--user-token-file', tokenFile, '--backend', 'db', '--role', 'readonly', '--ttl', '5m', '--purpose', 'reset a password', '--key', keyUri, '--json'],
      run,
    );
    expect(acting).toMatchObject({ acting_for: { iss: issuer.issuer, sub: 'alice' }, delegatee: ADDRESS, backend: 'db', role: 'readonly', purpose: 'reset a password' });

    const events = await cliJson<{ action: string; details: Record<string, unknown> }[]>(['audit', 'list', '--on-behalf-of', 'alice', '--json'], run);
    expect(events.map((event) => event.action)).toEqual(['delegation.created']);
    expect(events[0]!.details).toMatchObject({ delegation_id: acting.delegation_id, act: { iss: issuer.issuer, sub: 'alice', act: { sub: ADDRESS } } });

    expect(await cliJson(['trust', 'remove', issuer.issuer, '--json'], run)).toEqual({ issuer: issuer.issuer, removed: true });
    expect(await trusted()).toEqual([]);
  });
});
