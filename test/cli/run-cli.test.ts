/**
 * `tessera run` through the compiled CLI in child processes, against a real broker (SoftHSM2,
 * SQLite, its credential proxy in front of fake Stripe and OpenAI upstreams) and a real PostgreSQL
 * upstream, with commands in other languages: a psql shell script and Debian's python3.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { LeaseRecord } from '@tessera-broker/sdk/wire';
import { type CliOptions, runCli, startCli } from '../support/cli.js';
import { leaseRolesOf } from '../support/lease-env.js';
import { createTestDatabase, withClient } from '../support/postgres.js';
import { rawProxyCall, type StripeOpenAIEnv, startStripeOpenAIEnv } from '../proxy/support.js';

const ADDRESS = 'run-cli@test.local';
const PYTHON = '/usr/bin/python3'; // Debian's, not whatever python3 is first on PATH

/** Calls OpenAI and Stripe (leased as PAY) through the proxy with urllib, then waits for SIGTERM. */
const PYTHON_AGENT = `
import json, os, signal, urllib.request

def call(url, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)

chat = call(os.environ["OPENAI_BASE_URL"] + "/chat/completions", os.environ["OPENAI_API_KEY"], {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
charge = call(os.environ["PAY_STRIPE_API_BASE"] + "/v1/charges/ch_1", os.environ["PAY_STRIPE_API_KEY"])
print(json.dumps({"openai_base_url": os.environ["OPENAI_BASE_URL"], "chat": chat["choices"][0]["message"]["content"], "charge": charge["id"],
                  "keys": [os.environ["OPENAI_API_KEY"], os.environ["PAY_STRIPE_API_KEY"]], "proxy": os.environ["PAY_STRIPE_API_BASE"]}), flush=True)

def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)

signal.signal(signal.SIGTERM, on_term)
signal.alarm(120)  # a failed test leaves no agent behind
print("ready", flush=True)
while True:
    signal.pause()
`;

// Each CLI run is a Node process that loads the key store: seconds apiece on a busy machine.
describe('tessera run', { timeout: 120_000 }, () => {
  let env: StripeOpenAIEnv;
  let database: { url: string; drop(): Promise<void> };
  let dir: string;
  let cli: CliOptions;
  let key: string[];

  const liveLeases = async () =>
    (await env.env.admin.request<{ leases: LeaseRecord[] }>('GET', `/v1/admin/leases?identity=${encodeURIComponent(ADDRESS)}&state=active`)).leases;

  beforeAll(async () => {
    env = await startStripeOpenAIEnv();
    database = await createTestDatabase(inject('postgresUrl'));
    await withClient(database.url, (client) => client.query("CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) VALUES ('a'), ('b')"));
    const { admin } = env.env;
    await admin.request('POST', '/v1/admin/backends', { name: 'orders', type: 'postgres', connection_url: database.url });
    const agent = await env.env.provision(ADDRESS);
    await (await env.env.clientFor(agent.key_uri)).request('POST', '/v1/enroll', { ticket: agent.ticket });
    for (const [backend, role] of [['orders', 'readonly'], ['stripe', 'refunds:write'], ['openai', 'chat']]) {
      await admin.request('POST', '/v1/admin/grants', { subject: ADDRESS, backend, role, max_ttl_seconds: 3600, default_ttl_seconds: 600 });
    }
    dir = await mkdtemp(join(tmpdir(), 'tessera-run-cli-'));
    writeFileSync(join(dir, 'agent.py'), PYTHON_AGENT);
    cli = { cwd: dir, env: env.env.cliEnv };
    key = ['--key', agent.key_uri];
  }, 180_000);

  afterAll(async () => {
    await env?.close();
    await database?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a psql script gets working PG* variables and DATABASE_URL; tessera exits with its status and the role is gone", async () => {
    const script = [
      'psql -XtAc "SELECT current_user"',
      // DATABASE_URL alone, without the PG* variables.
      'env -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER -u PGPASSWORD psql "$DATABASE_URL" -XtAc "SELECT count(*) FROM items"',
      'echo "pin=${TESSERA_PKCS11_PIN-unset} data_dir=${TESSERA_DATA_DIR:+set}"',
      'exit 7',
    ].join('\n');
    const result = await runCli(['run', '--lease', 'orders:readonly:5m', ...key, '--', 'sh', '-c', script], cli);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(7);
    const [user, count, environment] = result.stdout.trim().split('\n');
    expect(user).toMatch(/^tessera_readonly_[0-9a-f]{16}$/);
    expect(count).toBe('2');
    // tessera's own environment is passed on, but not the PIN of the token it signs with.
    expect(environment).toBe('pin=unset data_dir=set');
    expect(await leaseRolesOf(database.url, 'orders')).toEqual([]);
    expect(await liveLeases()).toEqual([]);
  });

  it('--clean-env: the command sees only the lease variables and PATH', async () => {
    const result = await runCli(['run', '--clean-env', '--lease', 'orders:readonly', ...key, '--', 'env'], cli);
    expect(result.code, result.stderr).toBe(0);
    const names = result.stdout.trim().split('\n').map((line) => line.split('=')[0]).sort();
    expect(names).toEqual(['DATABASE_URL', 'PATH', 'PGDATABASE', 'PGHOST', 'PGPASSWORD', 'PGPORT', 'PGUSER']);
  });

  it("python3 calls OpenAI (OPENAI_BASE_URL with /v1) and Stripe (as PAY_) through the proxy; SIGTERM to tessera reaches it, 128+15, leases revoked", async () => {
    const run = startCli(['run', '--lease', 'openai:chat', '--lease', 'PAY=stripe:refunds:write', ...key, '--', PYTHON, 'agent.py'], cli);
    await run.waitForOutput((stdout) => stdout.includes('ready\n'));
    const seen = JSON.parse(run.output().stdout.split('\n')[0]!) as { openai_base_url: string; chat: string; charge: string; keys: string[]; proxy: string };
    expect(seen).toMatchObject({ openai_base_url: `${seen.proxy}/v1`, chat: 'Hello world', charge: 'ch_1' });
    expect(await liveLeases()).toHaveLength(2);

    expect(await run.stop(60_000)).toEqual({ code: 128 + 15, signal: null });
    expect(run.output().stdout).toMatch(/^got SIGTERM$/m);
    expect(run.output().stderr).toBe('');
    expect(await liveLeases()).toEqual([]);
    for (const apiKey of seen.keys) {
      expect(await rawProxyCall({ base_url: seen.proxy, api_key: apiKey }, { method: 'GET', path: '/v1/models' })).toMatchObject({ status: 401 });
    }
  });

  it('a lease revoked mid-run cannot be renewed: reported on stderr, the command gets SIGTERM', async () => {
    const run = startCli(['run', '--lease', 'orders:readonly:3s', ...key, '--', 'sh', '-c', 'trap "echo got TERM; exit 42" TERM; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'], cli);
    const exited = once(run.child, 'exit');
    await run.waitForOutput((stdout) => stdout.includes('ready\n'));
    await env.env.admin.request('POST', '/v1/admin/leases/revoke', { identity: ADDRESS, backend: 'orders', reason: 'test: lease lost' });
    expect(await exited).toEqual([42, null]);
    expect(run.output().stdout).toMatch(/^got TERM$/m);
    expect(run.output().stderr).toMatch(/^tessera: lease lse_\S+ \(orders:readonly\) is lost: it could not be renewed: .*; sending SIGTERM to the command$/m);
    expect(await leaseRolesOf(database.url, 'orders')).toEqual([]);
  });

  it('a refused or malformed lease: exit 1 with the error, the command never starts', async () => {
    const result = await runCli(['run', '--lease', 'orders:readonly', '--lease', 'stripe:billing:read', ...key, '--', 'sh', '-c', 'echo started'], cli);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^tessera: no_grant: /m);
    expect(await liveLeases()).toEqual([]);

    const malformed = await runCli(['run', '--lease', 'orders', ...key, '--', 'sh', '-c', 'echo started'], cli);
    expect(malformed).toMatchObject({ code: 1, stdout: '' });
    expect(malformed.stderr).toMatch(/^tessera: invalid_request: --lease "orders": no role \(expected \[NAME=\]<backend>:<role>\[:<ttl>\]/m);
  });
});
