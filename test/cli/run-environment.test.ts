/**
 * `tessera run`'s two pure parts: reading `--lease [NAME=]<backend>:<role>[:<ttl>]`, and the
 * variables each backend type's credential becomes.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { leaseEnvironment } from '../../src/cli/run/environment.js';
import { checkDistinct, parseLeaseSpec } from '../../src/cli/run/lease-spec.js';
import type { Lease, LeaseCredential } from '@tessera-broker/sdk';

const lease = (backend: string, backendType: string, credential: LeaseCredential): Lease => ({
  id: 'lse_1',
  backend,
  backendType,
  role: 'r',
  issuedAt: new Date(0),
  expiresAt: new Date(60_000),
  renewable: true,
  delegationId: null,
  act: null,
  credential,
});

const PG = { host: '127.0.0.1', port: 5433, database: 'orders db', username: 'tessera_readonly_0123456789abcdef', password: 'p@ss/word:?#' };
const PROXIED = { base_url: 'http://127.0.0.1:8701', api_key: 'tsk_token' };

describe('--lease', () => {
  it.each([
    ['orders-db:readonly', { backend: 'orders-db', role: 'readonly' }],
    ['orders-db:readonly:15m', { backend: 'orders-db', role: 'readonly', ttlSeconds: 900 }],
    ['orders-db:readonly:90', { backend: 'orders-db', role: 'readonly', ttlSeconds: 90 }],
    ['payments:refunds:write', { backend: 'payments', role: 'refunds:write' }],
    ['PAY=payments:refunds:write:1h', { name: 'PAY', backend: 'payments', role: 'refunds:write', ttlSeconds: 3600 }],
    ['reports_2=orders:reader', { name: 'reports_2', backend: 'orders', role: 'reader' }],
  ])('%s', (text, expected) => {
    expect(parseLeaseSpec(text)).toEqual({ text, ...expected });
  });

  it.each([
    ['orders-db', /no role/],
    ['orders-db:', /no role/],
    ['orders-db::5m', /no role/],
    ['Orders:reader', /"Orders" is not a backend name/],
    [':reader', /"" is not a backend name/],
    ['2X=orders:reader', /"2X" is not a variable name/],
    ['orders:reader:500ms', /the TTL must be a positive duration from 1s to 365d/],
    ['orders:reader:0', /the TTL must be a positive duration from 1s to 365d/],
    ['orders:reader:400d', /the TTL must be a positive duration from 1s to 365d/],
  ])('%s is refused with the expected syntax', (text, why) => {
    expect(() => parseLeaseSpec(text)).toThrow(expect.objectContaining({ code: 'invalid_request', message: expect.stringMatching(why) }));
    expect(() => parseLeaseSpec(text)).toThrow(/expected \[NAME=\]<backend>:<role>\[:<ttl>\]/);
  });

  it('refuses one backend twice without names, or one name twice, before leasing', () => {
    expect(() => checkDistinct(['orders:reader', 'orders:writer'].map(parseLeaseSpec))).toThrow(/--lease orders:reader and --lease orders:writer would set the same variables/);
    expect(() => checkDistinct(['A=orders:reader', 'A=billing:reader'].map(parseLeaseSpec))).toThrow(/would set the same variables/);
    expect(() => checkDistinct(['orders:reader', 'B=orders:writer', 'billing:reader'].map(parseLeaseSpec))).not.toThrow();
  });
});

describe('lease environment', () => {
  it('postgres: libpq variables and a DATABASE_URL the pg client reads back to the same values', () => {
    const variables = leaseEnvironment(lease('orders', 'postgres', PG));
    expect(variables).toEqual({
      DATABASE_URL: expect.stringMatching(/^postgresql:\/\//),
      PGHOST: '127.0.0.1',
      PGPORT: '5433',
      PGDATABASE: 'orders db',
      PGUSER: PG.username,
      PGPASSWORD: PG.password,
    });
    // The official pg client reads the URL back to the same values.
    const client = new pg.Client({ connectionString: variables.DATABASE_URL });
    expect([client.user, client.password, client.host, client.port, client.database]).toEqual([PG.username, PG.password, '127.0.0.1', 5433, 'orders db']);
  });

  it('postgres: an IPv6 host in brackets, a socket directory percent-encoded', () => {
    expect(leaseEnvironment(lease('orders', 'postgres', { ...PG, host: '::1' })).DATABASE_URL).toMatch(/@\[::1\]:5433\//);
    expect(leaseEnvironment(lease('orders', 'postgres', { ...PG, host: '/var/run/postgresql' })).DATABASE_URL).toMatch(/@%2Fvar%2Frun%2Fpostgresql:5433\//);
  });

  it('openai and openai-admin: the base URL with /v1, as the official clients take it', () => {
    expect(leaseEnvironment(lease('llm', 'openai', PROXIED))).toEqual({ OPENAI_BASE_URL: 'http://127.0.0.1:8701/v1', OPENAI_API_KEY: 'tsk_token' });
    expect(leaseEnvironment(lease('llm', 'openai-admin', { base_url: 'https://api.openai.com/', api_key: 'sk-svcacct' }))).toEqual({
      OPENAI_BASE_URL: 'https://api.openai.com/v1',
      OPENAI_API_KEY: 'sk-svcacct',
    });
  });

  it('stripe: the key and the API base (its paths carry the version)', () => {
    expect(leaseEnvironment(lease('payments', 'stripe', PROXIED))).toEqual({ STRIPE_API_KEY: 'tsk_token', STRIPE_API_BASE: 'http://127.0.0.1:8701' });
  });

  it('http: named after the backend; NAME= prefixes every type', () => {
    expect(leaseEnvironment(lease('crm-api', 'http', PROXIED))).toEqual({ CRM_API_BASE_URL: 'http://127.0.0.1:8701', CRM_API_API_KEY: 'tsk_token' });
    expect(leaseEnvironment(lease('crm-api', 'http', PROXIED), 'CRM')).toEqual({ CRM_BASE_URL: 'http://127.0.0.1:8701', CRM_API_KEY: 'tsk_token' });
    expect(Object.keys(leaseEnvironment(lease('orders', 'postgres', PG), 'REPORTS'))).toEqual([
      'REPORTS_DATABASE_URL',
      'REPORTS_PGHOST',
      'REPORTS_PGPORT',
      'REPORTS_PGDATABASE',
      'REPORTS_PGUSER',
      'REPORTS_PGPASSWORD',
    ]);
    expect(leaseEnvironment(lease('llm', 'openai', PROXIED), 'LLM')).toEqual({ LLM_OPENAI_BASE_URL: 'http://127.0.0.1:8701/v1', LLM_OPENAI_API_KEY: 'tsk_token' });
  });

  it('a type this CLI does not know is passed on like http; a credential of the wrong shape is an error', () => {
    expect(leaseEnvironment(lease('vault', 'newer-type', PROXIED))).toEqual({ VAULT_BASE_URL: 'http://127.0.0.1:8701', VAULT_API_KEY: 'tsk_token' });
    expect(() => leaseEnvironment(lease('orders', 'postgres', PROXIED))).toThrow(expect.objectContaining({ code: 'internal', message: expect.stringMatching(/unexpected shape/) }));
    expect(() => leaseEnvironment(lease('llm', 'openai', PG))).toThrow(/unexpected shape/);
  });
});
