/**
 * docker-compose.yml's topology as processes, and Tessera's core loop through it: PostgreSQL (the
 * shared test cluster, with the broker's database made by deploy/postgres-init.sh as the postgres
 * image runs it), the local KMS endpoint started with the kms service's command, the init service's
 * `tessera init` once, every broker replica as `tessera serve` on one database and one KMS, and a
 * round-robin load balancer (deploy/nginx.conf's job) in front of their API and proxy ports.
 *
 * Settings come from the compose file; only addresses change, because containers each have their
 * own network and processes share one: each replica gets loopback ports, and the public URLs name
 * this load balancer (test/deploy/compose.test.ts checks that the file's name the published ports).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { type Config, loadConfig } from '../../src/config/config.js';
import { KeyStores } from '../../src/keys/registry.js';
import type { ApiCredential } from '@tessera-broker/sdk/wire';
import { type BrokerChild, startBrokerChild } from '../support/broker-child.js';
import { type BackgroundCli, cliJson, REPO_ROOT, runCli, startCli } from '../support/cli.js';
import { brokerReplicas, readCompose, tesseraService, withFlag } from '../support/compose.js';
import { type FakeUpstream, sendJson, startFakeUpstream } from '../support/fake-upstream.js';
import { type IssuedLease, login, loginFails, sessionIsGone, TestAgent } from '../support/lease-env.js';
import { onFreePorts } from '../support/ports.js';
import { createAdminRole, createTestDatabase, withClient } from '../support/postgres.js';
import { type RoundRobinProxy, startRoundRobinProxy } from '../support/round-robin-proxy.js';

const execFileAsync = promisify(execFile);
const compose = readCompose();
const replicas = brokerReplicas(compose);
const composeEnv = replicas[0]![1].environment!;
const [, initService] = tesseraService(compose, 'init');
const [, kmsService] = tesseraService(compose, 'dev', 'kms');
const postgresService = compose.services[new URL(composeEnv.TESSERA_DATABASE_URL!).hostname]!;

const AGENT = 'deploy-bot@acme.local';
const ITEMS_SECRET = `items-${randomBytes(8).toString('hex')}`;

describe('the docker-compose topology as processes: the core loop through the load balancer', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  const savedEnv = { ...process.env };
  let env: Record<string, string>;
  let config: Config;
  let apiLb: RoundRobinProxy;
  let proxyLb: RoundRobinProxy;
  let keyStores: KeyStores;
  let admin: TestAgent;
  let agent: TestAgent;
  let items: FakeUpstream;
  let databaseLease: IssuedLease;
  let session: pg.Client;
  let apiLease: ApiCredential;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-deploy-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const cluster = new URL(inject('postgresUrl'));

    // The broker's database and its owner, as the postgres image runs deploy/postgres-init.sh; role
    // names are cluster-wide, so this run's owner gets a name of its own.
    const owner = `tessera_deploy_${randomBytes(4).toString('hex')}`;
    await execFileAsync('sh', [join(REPO_ROOT, 'deploy', 'postgres-init.sh')], {
      env: { PATH: process.env.PATH, ...postgresService.environment, TESSERA_DB_USER: owner, POSTGRES_USER: cluster.username, PGHOST: cluster.hostname, PGPORT: cluster.port, PGPASSWORD: decodeURIComponent(cluster.password) },
    });
    cleanups.push(() => withClient(cluster.href, (client) => client.query(`DROP DATABASE IF EXISTS ${owner} WITH (FORCE)`).then(() => client.query(`DROP ROLE IF EXISTS ${owner}`))));
    const databaseUrl = new URL(composeEnv.TESSERA_DATABASE_URL!);
    Object.assign(databaseUrl, { host: cluster.host, username: owner, pathname: `/${owner}` });

    // The kms service's command, on a loopback port it picks itself (port 0) and reports.
    const kmsArgs = withFlag(withFlag(kmsService.command!.slice(1), '--listen', '127.0.0.1:0'), '--state-file', join(dir, 'kms-state.json'));
    const kms: BackgroundCli = startCli(kmsArgs);
    cleanups.push(() => kms.stop());
    await kms.waitForOutput((stdout) => stdout.includes('Dev KMS listening on'));
    const kmsUrl = /Dev KMS listening on (\S+)/.exec(kms.output().stdout)![1]!;

    // The balancers first (the replicas' public URLs name them); each replica joins them once it listens.
    const apiUpstreams: string[] = [];
    const proxyUpstreams: string[] = [];
    apiLb = await startRoundRobinProxy(apiUpstreams);
    proxyLb = await startRoundRobinProxy(proxyUpstreams);
    cleanups.push(() => apiLb.close(), () => proxyLb.close());

    env = {
      ...composeEnv,
      TESSERA_DATA_DIR: join(dir, 'data'), // the `tessera` volume: init's and every replica's /data
      TESSERA_DATABASE_URL: databaseUrl.href,
      AWS_ENDPOINT_URL_KMS: kmsUrl,
      TESSERA_PUBLIC_URL: apiLb.url,
      TESSERA_PROXY_PUBLIC_URL: proxyLb.url,
      TESSERA_LOG_LEVEL: 'warn',
    };
    const init = await runCli(initService.command!.slice(1), { env });
    expect(init.code, init.stderr).toBe(0);

    const started: BrokerChild[] = [];
    cleanups.push(() => Promise.all(started.map((broker) => broker.stop())));
    for (let replica = 0; replica < replicas.length; replica++) {
      await onFreePorts(2, async ([api, proxy]) => {
        started.push(await startBrokerChild({ ...env, TESSERA_LISTEN: `127.0.0.1:${api}`, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxy}` }));
        apiUpstreams.push(`http://127.0.0.1:${api}`);
        proxyUpstreams.push(`http://127.0.0.1:${proxy}`);
      });
    }

    // This process signs as the admin and the agent with their KMS keys; the KMS key store reads
    // the standard AWS variables from the process environment.
    for (const [name, value] of Object.entries(env)) if (name.startsWith('AWS_')) process.env[name] = value;
    config = loadConfig({}, env);
    keyStores = new KeyStores(config);
    cleanups.push(() => keyStores.close());
    admin = await TestAgent.create(apiLb.url, await keyStores.signer(config.adminKeyUri!), 'admin@tessera.local', systemClock);

    items = await startFakeUpstream((request, response) =>
      request.headers['x-api-key'] === ITEMS_SECRET ? sendJson(response, 200, { path: request.path }) : sendJson(response, 401, { error: 'bad key' }),
    );
    cleanups.push(() => items.close());
  }, 240_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    for (const name of Object.keys(process.env)) if (!(name in savedEnv)) delete process.env[name];
    Object.assign(process.env, savedEnv);
  });

  /** Sends `count` requests one after another; returns their statuses and which replicas answered. */
  async function spread(lb: RoundRobinProxy, count: number, send: () => Promise<{ status: number; error?: string }>) {
    const from = lb.served.length;
    const replies = [];
    for (let i = 0; i < count; i++) replies.push(await send());
    return { replies, replicas: new Set(lb.served.slice(from)).size };
  }
  const whoami = () => agent.send<{ error?: string }>('GET', '/v1/whoami').then((reply) => ({ status: reply.status, error: reply.body.error }));
  const proxied = () =>
    fetch(`${apiLease.base_url}/api/items/7`, { headers: { authorization: `Bearer ${apiLease.api_key}` } }).then(async (response) => ({
      status: response.status,
      error: ((await response.json()) as { error?: string }).error,
    }));

  it('init ran once; every replica answers through the load balancer', async () => {
    const health = await spread(apiLb, replicas.length, () => fetch(`${apiLb.url}/healthz`).then((response) => ({ status: response.status })));
    expect(health).toEqual({ replies: replicas.map(() => ({ status: 200 })), replicas: replicas.length });
  });

  it('provision (a KMS key), enroll, lease PostgreSQL and an HTTP API through the credential proxy', async () => {
    const provisioned = await cliJson<{ key_uri: string; ticket: string }>(['provision', AGENT, '--keystore', 'kms', '--json'], { env });
    expect(provisioned.key_uri).toMatch(/^aws-kms:/);
    agent = await TestAgent.create(apiLb.url, await keyStores.signer(provisioned.key_uri), AGENT, systemClock);
    await agent.expect(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
    expect(await spread(apiLb, replicas.length, whoami)).toEqual({ replies: replicas.map(() => ({ status: 200 })), replicas: replicas.length });

    const upstream = await createTestDatabase(inject('postgresUrl'));
    cleanups.push(() => upstream.drop());
    const upstreamAdmin = await createAdminRole(upstream.url);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'orders', type: 'postgres', connection_url: upstreamAdmin.url });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: AGENT, backend: 'orders', role: 'readonly', max_ttl_seconds: 600 });
    databaseLease = await agent.lease('orders', 'readonly');
    session = await login(databaseLease.credential);
    cleanups.push(() => session.end().catch(() => undefined));
    expect((await session.query<{ user: string }>('SELECT current_user AS user')).rows).toEqual([{ user: databaseLease.credential.username }]);

    await admin.expect(201, 'POST', '/v1/admin/backends', {
      name: 'items',
      type: 'http',
      upstream_url: items.url,
      secret: ITEMS_SECRET,
      auth_header: 'x-api-key',
      auth_scheme: '',
      scopes: { reader: [{ methods: ['GET'], path_prefix: '/api/items' }] },
    });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: AGENT, backend: 'items', role: 'reader', max_ttl_seconds: 600 });
    apiLease = ((await agent.lease('items', 'reader')) as unknown as { credential: ApiCredential }).credential;
    // The base_url handed to the agent is the load balancer's proxy port, reachable from here.
    expect(apiLease.base_url).toBe(proxyLb.url);
    expect(await spread(proxyLb, replicas.length, proxied)).toEqual({ replies: replicas.map(() => ({ status: 200 })), replicas: replicas.length });
    expect(items.seen.at(-1)).toMatchObject({ path: '/api/items/7', headers: { 'x-api-key': ITEMS_SECRET } });
  }, 120_000);

  it('revoking the identity on one replica: the next request is refused on every replica, API and proxy, and the login is gone', async () => {
    await admin.expect(200, 'POST', `/v1/admin/identities/${encodeURIComponent(AGENT)}/revoke`, { reason: 'deployment drill' });

    expect(await spread(apiLb, replicas.length, whoami)).toEqual({ replies: replicas.map(() => ({ status: 403, error: 'identity_revoked' })), replicas: replicas.length });
    const forwarded = items.seen.length;
    expect(await spread(proxyLb, replicas.length, proxied)).toEqual({ replies: replicas.map(() => ({ status: 401, error: 'lease_token_inactive' })), replicas: replicas.length });
    expect(items.seen.length).toBe(forwarded);

    expect(await sessionIsGone(session)).toBe(true);
    await loginFails(databaseLease.credential);
  }, 60_000);
});
