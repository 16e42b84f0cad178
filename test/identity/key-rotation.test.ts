import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSessionCertificate, keyThumbprint, memorySessionSigner } from '@tessera-broker/sdk';
import type { RotateAuthorityResponse, RotateWrappingKeyResponse } from '@tessera-broker/sdk/wire';
import { rotateIdentityKey } from '../../provisioner/provision.js';
import { exportRecords } from '../../src/audit/export.js';
import type { EventRecord, ExportRecord } from '../../src/audit/records.js';
import { base64url } from '../../src/crypto/encoding.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { createProof, PROOF_SCHEME } from '../../src/identity/proof.js';
import type { KeyStoreKind, Signer } from '../../src/keys/key-store.js';
import { open } from '../../src/secrets/envelope.js';
import { KeyStoreWrappingKeys } from '../../src/secrets/wrapping-keys.js';
import { openStore, type Store } from '../../src/store/database.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { iterate, memorySigner, rechain } from '../audit/support.js';

const GRACE_SECONDS = 600;

/** Issue 13 §2: rotation with a stable identity, on SoftHSM2 and on the KMS endpoint (unmodified AWS SDK over HTTP). */
describe.each<KeyStoreKind>(['pkcs11', 'kms'])('key rotation (%s keys)', (keystore) => {
  let env: TestBroker;
  let store: Store;
  let seq = 0;
  beforeAll(async () => {
    env = await startTestBroker({ keystore });
    store = await openStore(env.config.databaseUrl, { create: false });
  });
  afterAll(async () => {
    await store?.close();
    await env?.close();
  });
  afterEach(() => env.clock.release());

  /**
   * A request whose proof is fresh by the broker's (possibly moved) clock, signed by `signer` naming
   * its key, or by a session key naming its session (iss: the primary key that certified it).
   */
  async function send(signer: Signer, method: string, path: string, body?: unknown, session?: { id: string; signer: Signer }) {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const kid = await keyThumbprint(signer.publicKey);
    const proof = await createProof(session?.signer ?? signer, kid, env.url, { method, url: env.url + path, body: payload }, Math.floor(env.clock.now() / 1000), session?.id);
    const headers: Record<string, string> = { authorization: `${PROOF_SCHEME} ${proof}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await env.broker.app.inject({ method: method as 'GET', url: path, headers, ...(body !== undefined && { payload }) });
    return { status: response.statusCode, body: response.json<Record<string, unknown>>() };
  }

  async function enrolledAgent() {
    const provisioned = await env.provision(`rotating-${keystore}-${++seq}@acme.local`);
    const signer = await env.keyStores.signer(provisioned.key_uri);
    expect(await send(signer, 'POST', '/v1/enroll', { ticket: provisioned.ticket })).toMatchObject({ status: 200 });
    return { ...provisioned, signer };
  }

  const actions = async (identityId: string) => {
    const { events } = await env.admin.request<{ events: { action: string; identity_id: string | null; reason: string | null; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/admin/audit?limit=1000',
    );
    return events.filter((event) => event.identity_id === identityId);
  };

  const verifyLog = async (jwks: JSONWebKeySet) => verifyAuditLog(exportRecords(store.repos, { issuer: env.url, jwks, exportedAt: env.clock.now() }), { jwks });

  let generation = 0;
  /** A 15-minute session (longer than the grace) certified by `certifier`, registered with a proof by `primary`. */
  async function startSession(primary: Signer, certifier = primary) {
    const sessionSigner = memorySessionSigner();
    const iat = Math.floor(env.clock.now() / 1000);
    generation = Math.max(generation + 1, env.clock.now());
    const certificate = await createSessionCertificate(certifier, await keyThumbprint(certifier.publicKey), sessionSigner.publicKey, { iat, exp: iat + 900, gen: generation });
    const reply = await send(primary, 'POST', '/v1/sessions', { certificate });
    return { reply, session: { id: reply.body.session_id as string, signer: sessionSigner } };
  }

  it('session keys across a rotation: certified by either key during the grace, they end with the old key', async () => {
    const agent = await enrolledAgent();
    const rotated = await rotateIdentityKey(env.admin, env.keyStores, agent.address, GRACE_SECONDS);
    const newSigner = await env.keyStores.signer(rotated.key.key_uri);
    const viaOldKey = await startSession(agent.signer);
    const viaNewKey = await startSession(newSigner);
    expect([viaOldKey.reply.status, viaNewKey.reply.status]).toEqual([201, 201]);
    for (const [primary, { session }] of [[agent.signer, viaOldKey], [newSigner, viaNewKey]] as const) {
      expect(await send(primary, 'GET', '/v1/whoami', undefined, session)).toMatchObject({ status: 200, body: { identity_id: agent.identity_id } });
    }
    // A session proof naming the other key as iss is not that session's.
    expect(await send(newSigner, 'GET', '/v1/whoami', undefined, viaOldKey.session)).toMatchObject({ status: 401 });

    env.clock.advance(GRACE_SECONDS * 1000);
    expect(await send(agent.signer, 'GET', '/v1/whoami', undefined, viaOldKey.session)).toMatchObject({ status: 401, body: { error: 'key_retired' } });
    expect(await send(newSigner, 'GET', '/v1/whoami', undefined, viaNewKey.session)).toMatchObject({ status: 200, body: { identity_id: agent.identity_id } });
    // The old key can no longer certify a session either (its registration proof is refused first).
    expect((await startSession(agent.signer)).reply).toMatchObject({ status: 401, body: { error: 'key_retired' } });
    // Nor when the current key proves the registration of a certificate the old one signed.
    expect((await startSession(newSigner, agent.signer)).reply).toMatchObject({ status: 400, body: { error: 'session_certificate_invalid' } });
  });

  it('rotates an agent key in the same key store: the id stays, the old key works for the grace period, then key_retired', async () => {
    const agent = await enrolledAgent();
    const rotated = await rotateIdentityKey(env.admin, env.keyStores, agent.address, GRACE_SECONDS);
    expect(rotated.identity.identity_id).toBe(agent.identity_id);
    expect(rotated.key.key_uri.startsWith(keystore === 'kms' ? 'aws-kms:' : 'pkcs11:')).toBe(true);
    expect(rotated.key.key_uri).not.toBe(agent.key_uri);
    expect(rotated.key.key_id).not.toBe(agent.identity_id);
    expect(rotated.previous_key).toMatchObject({ key_id: agent.identity_id, key_uri: agent.key_uri, retired_at: null });
    expect(Date.parse(rotated.previous_key.not_after!) - env.clock.now()).toBeLessThanOrEqual(GRACE_SECONDS * 1000);
    expect(rotated.identity).toMatchObject({ key_uri: rotated.key.key_uri, public_key: rotated.key.public_key });

    const newSigner = await env.keyStores.signer(rotated.key.key_uri);
    // Both keys act as the same identity during the grace period.
    for (const signer of [agent.signer, newSigner]) {
      expect(await send(signer, 'GET', '/v1/whoami')).toMatchObject({ status: 200, body: { identity_id: agent.identity_id, address: agent.address } });
    }
    // An audited request signed by the new key: its event stores the proof, which names the new key.
    expect(await send(newSigner, 'POST', '/v1/leases', { backend: 'nowhere', role: 'reader' })).toMatchObject({ status: 403, body: { error: 'no_grant' } });
    // A credential asked for with the new key is bound to it, under the stable identity id.
    const issued = await send(newSigner, 'POST', '/v1/credentials');
    expect(issued.status).toBe(200);
    const jwks = (await env.broker.app.inject({ url: '/.well-known/jwks.json' })).json<JSONWebKeySet>();
    const { payload } = await jwtVerify(issued.body.credential as string, createLocalJWKSet(jwks), { issuer: env.url, audience: env.url });
    expect(payload).toMatchObject({ sub: agent.identity_id, cnf: { jkt: rotated.key.key_id } });

    // Past the grace period (broker clock moved; no sleeping) the old key is refused with its own code.
    env.clock.advance(GRACE_SECONDS * 1000);
    expect(await send(agent.signer, 'GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'key_retired' } });
    expect(await send(newSigner, 'GET', '/v1/whoami')).toMatchObject({ status: 200, body: { identity_id: agent.identity_id } });
    // The prune job audits the retirement once, however often it runs.
    await env.broker.prune();
    await env.broker.prune();
    env.clock.release();

    const events = await actions(agent.identity_id);
    expect(events.filter((e) => e.action === 'identity.key_rotated')).toEqual([
      expect.objectContaining({ details: expect.objectContaining({ key_id: rotated.key.key_id, previous_key_id: agent.identity_id, key_uri: rotated.key.key_uri }) }),
    ]);
    expect(events.filter((e) => e.action === 'identity.key_retired').map((e) => e.details.key_id)).toEqual([agent.identity_id]);
    expect(events.filter((e) => e.action === 'proof.rejected').map((e) => e.reason)).toEqual(['key_retired']);
    const keys = await env.admin.request<{ identity_id: string; keys: { key_id: string; retired_at: string | null; not_after: string | null }[] }>(
      'GET',
      `/v1/admin/identities/${encodeURIComponent(agent.address)}/keys`,
    );
    expect(keys.keys.map((key) => [key.key_id, key.not_after !== null, key.retired_at !== null])).toEqual([
      [agent.identity_id, true, true],
      [rotated.key.key_id, false, false],
    ]);

    // Proofs by both keys, stored with their events, still prove offline who signed each request.
    await env.broker.auditCheckpoints.checkpoint();
    const report = await verifyLog((await env.broker.app.inject({ url: '/.well-known/audit-jwks.json' })).json());
    expect(report).toMatchObject({ ok: true, problem: null });
    const denied = await store.db.selectFrom('audit_events').select('proof').where('action', '=', 'lease.denied').where('identity_id', '=', agent.identity_id).executeTakeFirstOrThrow();
    expect(JSON.parse(Buffer.from(denied.proof!.split('.')[0]!, 'base64url').toString())).toMatchObject({ kid: rotated.key.key_id });
    expect(report.proofs).toBeGreaterThan(0);
  });

  it('offline verification takes a rotated-in key from the chain: with its identity.key_rotated event removed, altered or moved (chain re-hashed), its proofs fail', async () => {
    const agent = await enrolledAgent();
    const rotated = await rotateIdentityKey(env.admin, env.keyStores, agent.address, GRACE_SECONDS);
    const newSigner = await env.keyStores.signer(rotated.key.key_uri);
    // Two stored proofs depending on the new key: its own, and a session's it certified.
    expect(await send(newSigner, 'POST', '/v1/leases', { backend: 'nowhere', role: 'reader' })).toMatchObject({ status: 403 });
    const { reply, session } = await startSession(newSigner);
    expect(reply.status).toBe(201);
    expect(await send(newSigner, 'POST', '/v1/leases', { backend: 'nowhere', role: 'writer' }, session)).toMatchObject({ status: 403 });

    const jwks = (await env.broker.app.inject({ url: '/.well-known/audit-jwks.json' })).json<JSONWebKeySet>();
    const records: ExportRecord[] = [];
    for await (const record of exportRecords(store.repos, { issuer: env.url, jwks, exportedAt: env.clock.now() })) records.push(JSON.parse(JSON.stringify(record)) as ExportRecord);
    const report = await verifyAuditLog(iterate(records), { jwks });
    expect(report).toMatchObject({ ok: true, problem: null });
    expect(await verifyAuditLog(iterate(rechain(records, (events) => events)))).toMatchObject({ ok: true, problem: null });

    const isRotation = (event: EventRecord) => event.action === 'identity.key_rotated' && event.identity_id === agent.identity_id;
    const byNewKey = (event: EventRecord) => event.action === 'lease.denied' && event.identity_id === agent.identity_id;
    const firstSeq = (chain: ExportRecord[], which: (event: EventRecord) => boolean) => chain.find((record): record is EventRecord => record.type === 'event' && which(record))!.seq;
    const notIntroduced = (chain: ExportRecord[]) => ({ ok: false, problem: { code: 'proof_key_not_introduced', seq: firstSeq(chain, byNewKey), message: expect.stringContaining(rotated.key.key_id) } });

    // An insider deletes the rotation: the identity record alone no longer makes the key the agent's.
    const removed = rechain(records, (events) => events.filter((event) => !isRotation(event)));
    expect(await verifyAuditLog(iterate(removed))).toMatchObject(notIntroduced(removed));
    // With the direct proofs gone too, the session proof fails: its certificate's key is not the agent's either.
    const kidOf = (event: EventRecord) => (event.proof === null ? null : (JSON.parse(Buffer.from(event.proof.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid);
    const sessionOnly = rechain(records, (events) => events.filter((event) => !isRotation(event) && kidOf(event) !== rotated.key.key_id));
    expect(await verifyAuditLog(iterate(sessionOnly))).toMatchObject({
      ok: false,
      problem: { code: 'proof_key_not_introduced', seq: firstSeq(sessionOnly, (event) => kidOf(event) === session.id), message: expect.stringContaining(`session ${session.id} is certified by ${rotated.key.key_id}`) },
    });
    // Swapping in a key of their own: the event no longer holds together (key_id is not its thumbprint), or
    // introduces that key, not the agent's real one.
    const decoy = memorySigner();
    const altered = rechain(records, (events) => events.map((event) => (isRotation(event) ? { ...event, details: { ...event.details, public_key: base64url.encode(decoy.publicKey) } } : event)));
    expect(await verifyAuditLog(iterate(altered))).toMatchObject({ ok: false, problem: { code: 'key_rotation_invalid', seq: firstSeq(altered, isRotation) } });
    const decoyId = await keyThumbprint(decoy.publicKey);
    const swapped = rechain(records, (events) => events.map((event) => (isRotation(event) ? { ...event, details: { ...event.details, key_id: decoyId, public_key: base64url.encode(decoy.publicKey) } } : event)));
    expect(await verifyAuditLog(iterate(swapped))).toMatchObject(notIntroduced(swapped));
    // ... or moves it after the proofs: a key counts from its rotation on, also in a range that starts later.
    const moved = rechain(records, (events) => {
      const rotation = events.find(isRotation)!;
      const rest = events.filter((event) => event !== rotation);
      const at = rest.findIndex(byNewKey);
      return [...rest.slice(0, at + 1), rotation, ...rest.slice(at + 1)];
    });
    expect(await verifyAuditLog(iterate(moved))).toMatchObject(notIntroduced(moved));
    const from = firstSeq(moved, byNewKey);
    const range = moved.filter((record) => record.type !== 'event' || record.seq >= from).map((record) => (record.type === 'header' ? { ...record, from } : record));
    expect(await verifyAuditLog(iterate(range))).toMatchObject(notIntroduced(moved));

    // A range after the rotation cannot see it: the exported key is taken for the agent's, as the broker had it.
    const afterRotation = firstSeq(records, isRotation) + 1;
    expect(await verifyAuditLog(exportRecords(store.repos, { issuer: env.url, jwks, from: afterRotation, exportedAt: env.clock.now() }), { jwks })).toMatchObject({ ok: true, problem: null });
  });

  it('refuses a rotation to a key of another identity, into another key store, or of a revoked identity, changing nothing', async () => {
    const agent = await enrolledAgent();
    const other = await enrolledAgent();
    const path = `/v1/admin/identities/${encodeURIComponent(agent.address)}/keys`;
    await expect(env.admin.request('POST', path, { public_key: other.public_key, key_uri: other.key_uri })).rejects.toMatchObject({ code: 'conflict', status: 409 });
    const foreign = keystore === 'kms' ? 'pkcs11:token=elsewhere;object=k' : 'aws-kms:arn:aws:kms:us-east-1:111122223333:key/x';
    const fresh = await env.keyStore.createSigningKey({ label: `spare-${keystore}-${++seq}` });
    const freshKey = Buffer.from(fresh.publicKey).toString('base64url');
    await expect(env.admin.request('POST', path, { public_key: freshKey, key_uri: foreign })).rejects.toMatchObject({ code: 'invalid_request', status: 400 });
    await env.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(other.address)}/revoke`, { reason: 'test' });
    await expect(env.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(other.address)}/keys`, { public_key: freshKey, key_uri: fresh.uri })).rejects.toMatchObject({
      code: 'identity_revoked',
    });
    expect(await send(agent.signer, 'GET', '/v1/whoami')).toMatchObject({ status: 200 });
    expect((await actions(agent.identity_id)).filter((e) => e.action === 'identity.key_rotated')).toEqual([]);
  });

  it('rotates the authority key: JWKS has both during the overlap, new credentials and checkpoints use the new key, old checkpoints still verify', async () => {
    const agent = await enrolledAgent();
    const admin = await adminSigner();
    const jwksOf = async (path: string) => (await env.broker.app.inject({ url: path })).json<{ keys: { kid: string }[] }>();
    const oldKid = (await jwksOf('/.well-known/jwks.json')).keys[0]!.kid;
    const before = await env.broker.auditCheckpoints.checkpoint();
    expect(before?.jws).toBeDefined();

    const rotated = await send(admin, 'POST', '/v1/admin/authority/rotate', { overlap_seconds: 3600 });
    expect(rotated.status).toBe(200);
    const { kid, key_uri, previous_kid } = rotated.body as unknown as RotateAuthorityResponse;
    expect(previous_kid).toBe(oldKid);
    expect(key_uri.startsWith(keystore === 'kms' ? 'aws-kms:' : 'pkcs11:')).toBe(true);
    expect((await jwksOf('/.well-known/jwks.json')).keys.map((k) => k.kid)).toEqual([kid, oldKid]);

    const credential = (await send(agent.signer, 'POST', '/v1/credentials')).body.credential as string;
    const jwks = await jwksOf('/.well-known/jwks.json');
    const verified = await jwtVerify(credential, createLocalJWKSet(jwks as JSONWebKeySet), { issuer: env.url, audience: env.url });
    expect(verified.protectedHeader.kid).toBe(kid);
    const after = await env.broker.auditCheckpoints.checkpoint();
    expect(JSON.parse(Buffer.from(after!.jws.split('.')[0]!, 'base64url').toString())).toMatchObject({ kid });

    // After the overlap the old key leaves JWKS, stays in the audit JWKS, and is retired once.
    env.clock.advance(3600_000);
    const currentOnly = await jwksOf('/.well-known/jwks.json');
    expect(currentOnly.keys.map((k) => k.kid)).toEqual([kid]);
    const auditJwks = await jwksOf('/.well-known/audit-jwks.json');
    expect(auditJwks.keys.map((k) => k.kid)).toEqual([kid, oldKid]);
    await env.broker.prune();
    env.clock.release();
    const report = await verifyLog(auditJwks as JSONWebKeySet);
    expect(report).toMatchObject({ ok: true, problem: null });
    expect(report.checkpoints).toBeGreaterThanOrEqual(2);
    // With only the current key, the checkpoint signed before the rotation does not verify: the audit JWKS is what keeps it.
    expect((await verifyLog(currentOnly as JSONWebKeySet)).problem?.code).toBe('checkpoint_bad_signature');
    const { events } = await env.admin.request<{ events: { action: string; details: Record<string, unknown> }[] }>('GET', '/v1/admin/audit?action=authority.key_retired');
    expect(events.map((e) => e.details.kid)).toEqual([oldKid]);
  });

  it('rotates the wrapping key: data keys re-wrapped, ciphertexts untouched, the secret opens under the new key, the old key is retired', async () => {
    const admin = await adminSigner();
    const backend = `items-${keystore}`;
    expect(
      await send(admin, 'POST', '/v1/admin/backends', {
        name: backend,
        type: 'http',
        upstream_url: 'http://127.0.0.1:9',
        secret: 'upstream-root-secret',
        scopes: { reader: [{ methods: ['GET'], path_prefix: '/v1/items' }] },
      }),
    ).toMatchObject({ status: 201 });
    const before = await store.db.selectFrom('backends').selectAll().where('name', '=', backend).executeTakeFirstOrThrow();

    const rotated = await send(admin, 'POST', '/v1/admin/wrapping-key/rotate');
    expect(rotated.status).toBe(200);
    const { key_uri, previous_key_uri, rewrapped } = rotated.body as unknown as RotateWrappingKeyResponse;
    expect(previous_key_uri).toBe(before.wrapping_key_uri);
    expect(key_uri).not.toBe(previous_key_uri);
    expect(rewrapped).toBeGreaterThanOrEqual(1);

    const after = await store.db.selectFrom('backends').selectAll().where('name', '=', backend).executeTakeFirstOrThrow();
    expect(after).toMatchObject({ sealed_secret: before.sealed_secret, wrapping_key_uri: key_uri });
    expect(after.wrapped_key).not.toBe(before.wrapped_key);
    const wrappingKeys = new KeyStoreWrappingKeys(env.keyStores, store.repos.settings);
    const sealed = { ciphertext: after.sealed_secret, wrappedKey: after.wrapped_key, wrappingKeyUri: after.wrapping_key_uri };
    expect(await open(sealed, await wrappingKeys.get(key_uri), `tessera-backend:${backend}`)).toBe('upstream-root-secret');
    await expect(open(sealed, await wrappingKeys.get(previous_key_uri), `tessera-backend:${backend}`)).rejects.toThrow();
    expect(await wrappingKeys.current()).toMatchObject({ uri: key_uri });

    // `backend show` and new backends work on; nothing refers to the old key any more.
    expect(await send(admin, 'GET', `/v1/admin/backends/${backend}`)).toMatchObject({ status: 200, body: { name: backend } });
    const rows = await store.db.selectFrom('backends').select('wrapping_key_uri').execute();
    expect(rows.map((row) => row.wrapping_key_uri)).not.toContain(previous_key_uri);
    const { events } = await env.admin.request<{ events: { action: string; details: Record<string, unknown> }[] }>('GET', '/v1/admin/audit?limit=1000');
    expect(events.filter((e) => e.action.startsWith('secrets.wrapping_key')).map((e) => [e.action, e.details.key_uri])).toEqual([
      ['secrets.wrapping_key_rotated', key_uri],
      ['secrets.wrapping_key_retired', previous_key_uri],
    ]);
    expect(JSON.stringify(events)).not.toContain('upstream-root-secret');
  });

  const adminSigner = () => env.keyStores.signer(env.config.adminKeyUri!);

  it('rotates the admin key (last: env.admin signs with the old key): the admin id stays and the new key administers', async () => {
    const adminAddress = 'admin@tessera.local';
    const before = await env.admin.request<{ identity_id: string }>('GET', '/v1/whoami');
    const rotated = await rotateIdentityKey(env.admin, env.keyStores, adminAddress, 0);
    expect(rotated.identity.identity_id).toBe(before.identity_id);
    const newAdmin = await env.keyStores.signer(rotated.key.key_uri);
    expect(await send(newAdmin, 'GET', '/v1/admin/identities')).toMatchObject({ status: 200 });
    // Grace 0: the old admin key is refused at once.
    expect(await send(await env.keyStores.signer(env.config.adminKeyUri!), 'GET', '/v1/admin/identities')).toMatchObject({ status: 401, body: { error: 'key_retired' } });
  });
});
