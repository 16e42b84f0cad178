import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerRequestError } from '@tessera-broker/sdk';
import { verifyEd25519 } from '../../src/crypto/ed25519.js';
import { base64url } from '../../src/crypto/encoding.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { startTestBroker, type TestBroker, type TestDialect } from '../support/broker.js';
import type { KeyStoreKind } from '../../src/keys/key-store.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const matrix: [KeyStoreKind, TestDialect][] = [
  ['pkcs11', 'sqlite'],
  ['pkcs11', 'postgres'],
  ['kms', 'sqlite'],
  ['kms', 'postgres'],
];

const rejection = (code: string, status: number) =>
  expect.objectContaining({ name: 'BrokerRequestError', code, status }) as unknown as BrokerRequestError;

describe.each(matrix)('provision -> enroll -> whoami -> revoke (%s keys, %s store)', (keystore, dialect) => {
  let env: TestBroker;
  beforeAll(async () => {
    env = await startTestBroker({ keystore, dialect });
  });
  afterAll(() => env?.close());

  it('runs the whole identity lifecycle', async () => {
    const address = `billing-bot-${keystore}@acme.local`;
    const provisioned = await env.provision(address, { team: 'payments' });
    expect(provisioned.key_uri.startsWith(keystore === 'kms' ? 'aws-kms:' : 'pkcs11:')).toBe(true);
    expect(provisioned.identity_id).toBe(await keyThumbprint(base64url.decode(provisioned.public_key)));
    expect(provisioned.ticket).toMatch(/^tkt_[A-Za-z0-9_-]{43}$/);

    const agent = await env.clientFor(provisioned.key_uri);
    await expect(agent.request('GET', '/v1/whoami')).rejects.toEqual(rejection('identity_not_enrolled', 403));

    const enrolled = await agent.request<{ identity: { status: string }; credential: string }>('POST', '/v1/enroll', { ticket: provisioned.ticket });
    expect(enrolled.identity.status).toBe('active');
    const { payload, protectedHeader } = await jwtVerify(enrolled.credential, createRemoteJWKSet(new URL(`${env.url}/.well-known/jwks.json`)), {
      issuer: env.url,
      audience: env.url,
    });
    expect(protectedHeader.typ).toBe('tessera-identity+jwt');
    expect(payload).toMatchObject({ sub: provisioned.identity_id, address, attributes: { team: 'payments' }, cnf: { jkt: provisioned.identity_id } });

    const me = await agent.request<{ address: string; identity_id: string; status: string }>('GET', '/v1/whoami');
    expect(me).toMatchObject({ address, identity_id: provisioned.identity_id, status: 'active' });

    await env.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(address)}/revoke`, { reason: 'key compromise drill' });
    await expect(agent.request('GET', '/v1/whoami')).rejects.toEqual(rejection('identity_revoked', 403));

    const { events } = await env.admin.request<{ events: { action: string; outcome: string; reason: string | null; actor: string | null }[] }>(
      'GET',
      `/v1/admin/audit?identity=${encodeURIComponent(address)}`,
    );
    const actions = events.map((e) => `${e.action}:${e.outcome}`);
    expect(actions).toEqual(
      expect.arrayContaining(['identity.registered:success', 'ticket.issued:success', 'ticket.redeemed:success', 'identity.enrolled:success', 'identity.revoked:success']),
    );
    expect(events.find((e) => e.action === 'identity.revoked')).toMatchObject({ reason: 'key compromise drill', actor: env.admin.identityId });
    expect(events.filter((e) => e.action === 'proof.rejected').map((e) => e.reason)).toEqual(['identity_not_enrolled', 'identity_revoked']);
    expect(JSON.stringify(events)).not.toContain(provisioned.ticket);
  });

  it('signs the authority key and agent keys inside the key store', async () => {
    const { keys } = (await (await fetch(`${env.url}/.well-known/jwks.json`)).json()) as { keys: { x: string; kid: string }[] };
    expect(keys).toHaveLength(1);
    const authority = await env.keyStores.signer((await env.broker.identities.findByAddress('admin@tessera.local'))!.keyUri);
    const message = new TextEncoder().encode('m');
    expect(verifyEd25519(await authority.sign(message), message, authority.publicKey)).toBe(true);
    expect(keys[0]!.kid).toBe(await keyThumbprint(base64url.decode(keys[0]!.x)));
  });
});

// What the CLI's identity commands (provision, ticket, identity list/show) rely on, over HTTP: the
// CLI tests check only the CLI's own behaviour (flags, output, exit codes) in a few processes.
describe('admin identity routes behind the CLI commands', () => {
  let env: TestBroker;
  beforeAll(async () => {
    env = await startTestBroker();
  });
  afterAll(() => env?.close());

  it('conflicts on a second provision, bounds ticket lifetimes, shows, lists and filters identities', async () => {
    const address = 'billing-bot@acme.local';
    const provisioned = await env.provision(address, { team: 'payments' });
    await expect(env.provision(address, { team: 'payments' })).rejects.toMatchObject({ code: 'conflict', status: 409, message: expect.stringContaining(address) });

    const agent = await env.clientFor(provisioned.key_uri);
    await agent.request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    await expect(agent.request('POST', '/v1/enroll', { ticket: provisioned.ticket })).rejects.toEqual(rejection('ticket_used', 403));

    const tickets = `/v1/admin/identities/${encodeURIComponent(address)}/tickets`;
    const fresh = await env.admin.request<{ identity_id: string; ticket: string; ticket_expires_at: string }>('POST', tickets, {});
    expect(fresh).toMatchObject({ identity_id: provisioned.identity_id, address });
    expect(fresh.ticket).toMatch(/^tkt_[A-Za-z0-9_-]{43}$/);
    expect(fresh.ticket).not.toBe(provisioned.ticket);
    // Default TESSERA_TICKET_TTL is 10 minutes; TESSERA_TICKET_MAX_TTL (24 h) caps a requested one.
    const left = Date.parse(fresh.ticket_expires_at) - env.clock.now();
    expect(left).toBeGreaterThan(9 * 60_000);
    expect(left).toBeLessThanOrEqual(10 * 60_000);
    await expect(env.admin.request('POST', tickets, { ttl_seconds: 48 * 3600 })).rejects.toEqual(rejection('invalid_request', 400));

    const list = await env.admin.request<{ identities: { address: string; role: string; status: string }[] }>('GET', '/v1/admin/identities');
    expect(list.identities.map((identity) => [identity.address, identity.role, identity.status]).sort()).toEqual([
      ['admin@tessera.local', 'admin', 'active'],
      [address, 'agent', 'active'],
    ]);
    const shown = await env.admin.request<Record<string, unknown>>('GET', `/v1/admin/identities/${encodeURIComponent(address)}`);
    expect(shown).toMatchObject({ identity_id: provisioned.identity_id, address, status: 'active', key_uri: provisioned.key_uri, public_key: provisioned.public_key, attributes: { team: 'payments' }, revoked_at: null });
    expect(shown.enrolled_at).not.toBeNull();
    await expect(env.admin.request('GET', '/v1/admin/identities/nobody%40acme.local')).rejects.toEqual(rejection('not_found', 404));

    await env.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(address)}/revoke`, { reason: 'test' });
    const revoked = await env.admin.request<{ identities: { address: string }[] }>('GET', '/v1/admin/identities?status=revoked');
    expect(revoked.identities.map((identity) => identity.address)).toEqual([address]);
  });
});
