import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { inject } from 'vitest';
import { DatabaseAuditLog } from '../../src/audit/audit-log.js';
import { AuditCheckpointer, fixedCheckpointKey } from '../../src/audit/checkpoints.js';
import { eventHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { exportRecords } from '../../src/audit/export.js';
import type { EventRecord, ExportRecord } from '../../src/audit/records.js';
import { verifyAuditLog, type VerifyReport } from '../../src/audit/verify.js';
import { base64url } from '../../src/crypto/encoding.js';
import { createProof } from '../../src/identity/proof.js';
import { ed25519PublicJwk, keyThumbprint } from '@tessera-broker/sdk';
import type { Signer } from '../../src/keys/key-store.js';
import { openStore, type Store } from '../../src/store/database.js';
import { TestClock } from '../support/clock.js';
import { createTestDatabase } from '../support/postgres.js';

export const ISSUER = 'https://broker.test';

/** An in-process Ed25519 signer: stands in for a KMS/HSM key where only the signatures matter. */
export function memorySigner(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = base64url.decode(publicKey.export({ format: 'jwk' }).x!);
  return { uri: 'memory:test', publicKey: raw, sign: async (data) => new Uint8Array(sign(null, data, privateKey)) };
}

/** An active identity and its key, as registration writes them (the audit export takes the keys from identity_keys). */
export async function insertIdentity(store: Store, signer: Signer, address: string, at: number): Promise<string> {
  const id = await keyThumbprint(signer.publicKey);
  await store.repos.identities.insert(
    { id, address, role: 'agent', status: 'active', publicKey: signer.publicKey, keyUri: 'memory:test', attributes: {}, createdAt: at, enrolledAt: at, revokedAt: null, revokedBy: null, revocationReason: null },
    null,
  );
  await store.repos.identityKeys.add({ keyId: id, identityId: id, publicKey: signer.publicKey, keyUri: 'memory:test', createdAt: at, notAfter: null, retiredAt: null });
  return id;
}

export async function jwksOf(signer: Signer): Promise<JSONWebKeySet> {
  return { keys: [{ ...ed25519PublicJwk(signer.publicKey), kid: await keyThumbprint(signer.publicKey), alg: 'EdDSA', use: 'sig' }] };
}

export interface AuditFixture {
  readonly store: Store;
  readonly clock: TestClock;
  readonly audit: DatabaseAuditLog;
  readonly authority: Signer;
  readonly checkpoints: AuditCheckpointer;
  /** Registers an identity row and returns a function making proofs signed by it. */
  agent(address: string): Promise<{ id: string; signer: Signer; proof(): Promise<string> }>;
  verify(range?: { from?: number; to?: number }, jwks?: JSONWebKeySet): Promise<VerifyReport>;
  close(): Promise<void>;
}

/** A migrated store (fresh SQLite file or PostgreSQL database), its audit log and a checkpointer. */
export async function auditFixture(dialect: 'sqlite' | 'postgres'): Promise<AuditFixture> {
  const cleanups: (() => Promise<void>)[] = [];
  let url: string;
  if (dialect === 'postgres') {
    const database = await createTestDatabase(inject('postgresUrl'));
    cleanups.push(() => database.drop());
    url = database.url;
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-audit-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    url = `sqlite:${join(dir, 'tessera.db')}`;
  }
  const store = await openStore(url);
  cleanups.push(() => store.close());
  const clock = new TestClock();
  const authority = memorySigner();
  const kid = await keyThumbprint(authority.publicKey);
  const jwks = await jwksOf(authority);
  return {
    store,
    clock,
    audit: new DatabaseAuditLog(store.repos, clock),
    authority,
    checkpoints: new AuditCheckpointer(store.repos.audit, fixedCheckpointKey(authority, kid), clock, { everyEvents: 1000, intervalMs: 60_000 }),
    async agent(address) {
      const signer = memorySigner();
      const id = await keyThumbprint(signer.publicKey);
      await insertIdentity(store, signer, address, clock.now());
      return { id, signer, proof: () => createProof(signer, id, ISSUER, { method: 'POST', url: `${ISSUER}/v1/leases`, body: '{}' }) };
    },
    verify: (range = {}, override = jwks) => verifyAuditLog(exportRecords(store.repos, { issuer: ISSUER, jwks: override, exportedAt: clock.now(), ...range })),
    async close() {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/** Appends `count` events alternating between anonymous ones and ones by the agent carrying its proof. */
export async function appendEvents(fixture: AuditFixture, count: number, agent?: { id: string; proof(): Promise<string> }): Promise<void> {
  for (let i = 0; i < count; i++) {
    const byAgent = agent !== undefined && i % 2 === 1;
    await fixture.audit.append({
      actor: byAgent ? agent.id : null,
      action: byAgent ? 'lease.issued' : 'proof.rejected',
      outcome: byAgent ? 'success' : 'denied',
      identityId: byAgent ? agent.id : null,
      reason: byAgent ? null : 'proof_missing',
      details: { n: i, note: 'héllo ✓', nested: { b: 1, a: [1.5, null, true] } },
      proof: byAgent ? await agent.proof() : null,
    });
  }
}

/** `items` as the async source verifyAuditLog() reads. */
export async function* iterate<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/**
 * What an insider with database access gets after tampering with events (`edit` may change, drop,
 * add or reorder them): seqs renumbered without gaps and every hash recomputed, so the chain is
 * consistent again. Checkpoints are dropped (they need the authority key); the header's head moves.
 */
export function rechain(records: readonly ExportRecord[], edit: (events: EventRecord[]) => EventRecord[]): ExportRecord[] {
  const events = records.filter((record): record is EventRecord => record.type === 'event');
  let seq = (events[0]?.seq ?? 1) - 1;
  let prev = seq === 0 ? GENESIS_HASH : events[0]!.prev_hash;
  const rechained = edit(events).map((changed) => {
    const event = { ...changed, seq: ++seq, prev_hash: prev };
    prev = eventHash(event);
    return { ...event, hash: prev };
  });
  const head = { seq, hash: prev };
  const others = records.filter((record) => record.type !== 'event' && record.type !== 'checkpoint');
  return [...others.map((record) => (record.type === 'header' ? { ...record, to: seq, head } : record)), ...rechained];
}
