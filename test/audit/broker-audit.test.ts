import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromJsonLines } from '../../src/audit/jsonl.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { createProof, parseProofHeader, PROOF_SCHEME } from '../../src/identity/proof.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

describe('audit through the broker', () => {
  let env: TestBroker;
  let dir: string;
  let agentId: string;
  let jwks: JSONWebKeySet;

  beforeAll(async () => {
    env = await startTestBroker();
    dir = await mkdtemp(join(tmpdir(), 'tessera-audit-export-'));
    const provisioned = await env.provision('bot@acme.local');
    const agent = await env.clientFor(provisioned.key_uri);
    agentId = agent.identityId;
    await agent.request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    await expect(agent.request('GET', '/v1/admin/identities')).rejects.toMatchObject({ code: 'forbidden' });
    await env.broker.auditCheckpoints.checkpoint();
    jwks = (await (await fetch(`${env.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  });
  afterAll(async () => {
    await env?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** GET as the admin with a fresh proof; BrokerClient only reads JSON bodies. */
  async function adminGet(path: string): Promise<Response> {
    const signer = await env.keyStores.signer(env.config.adminKeyUri!);
    const url = env.url + path;
    const proof = await createProof(signer, await keyThumbprint(signer.publicKey), env.url, { method: 'GET', url, body: '' });
    return fetch(url, { headers: { authorization: `${PROOF_SCHEME} ${proof}` } });
  }

  it("keeps each agent request's signed proof with the events it caused", async () => {
    const { events } = await env.admin.request<{ events: { action: string; actor: string | null; proof: string | null }[] }>('GET', `/v1/admin/audit?actor=${agentId}`);
    const byAction = Object.fromEntries(events.map((event) => [event.action, event]));
    for (const action of ['ticket.redeemed', 'identity.enrolled', 'request.forbidden']) {
      const proof = byAction[action]?.proof;
      expect(proof, action).toBeTruthy();
      expect(parseProofHeader(`${PROOF_SCHEME} ${proof}`).kid).toBe(agentId);
    }
    expect(parseProofHeader(`${PROOF_SCHEME} ${byAction['ticket.redeemed']!.proof}`).claims.htu).toBe(`${env.url}/v1/enroll`);
    const registered = await env.admin.request<{ events: { actor: string; proof: string | null }[] }>('GET', '/v1/admin/audit?action=identity.registered&limit=5');
    expect(registered.events.at(-1)!.proof).toBeTruthy(); // the admin's own request proof
  });

  it('exports JSON Lines over HTTP that verify offline against the published JWKS', async () => {
    const response = await adminGet('/v1/admin/audit/export');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/x-ndjson');
    const file = join(dir, 'export.jsonl');
    await writeFile(file, await response.text());
    const report = await verifyAuditLog(fromJsonLines(createReadStream(file)), { jwks });
    expect(report).toMatchObject({ ok: true, checkpoints: 1 });
    expect(report.proofs).toBeGreaterThanOrEqual(4);

    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    const index = lines.findIndex((line) => line.includes('"action":"identity.enrolled"'));
    const seq = (JSON.parse(lines[index]!) as { seq: number }).seq;
    lines[index] = lines[index]!.replace('"outcome":"success"', '"outcome":"denied"');
    await writeFile(file, `${lines.join('\n')}\n`);
    expect(await verifyAuditLog(fromJsonLines(createReadStream(file)), { jwks })).toMatchObject({ ok: false, problem: { seq, code: 'hash_mismatch' } });
  });

  // Last: it signs checkpoints of its own.
  it('schedules its background work on the injected scheduler; a checkpoint poll signs only once one is due', async () => {
    // The reaper and the checkpoint poll every second, the rejection summary every window (10 s),
    // the replay-cache pruning every minute.
    expect(env.scheduler.intervals().sort((a, b) => a - b)).toEqual([1_000, 1_000, 10_000, 60_000]);
    const checkpoints = env.broker.auditCheckpoints;
    await checkpoints.checkpoint();
    // New events, and a minute has not passed since the last checkpoint: the poll leaves the head unsigned...
    await env.provision('poll-1@acme.local');
    await env.scheduler.tick();
    expect(await checkpoints.checkpoint()).toBeDefined();
    // ...and signs it once the interval has passed by the broker's clock.
    await env.provision('poll-2@acme.local');
    env.clock.advance(60_000);
    try {
      await env.scheduler.tick();
      expect(await checkpoints.checkpoint()).toBeUndefined();
    } finally {
      env.clock.advance(-60_000);
    }
  });
});
