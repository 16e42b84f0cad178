/**
 * Load generator for the identity benchmark, run as its own process (pinned to its own CPU by the
 * parent when it can) so that signing proofs and driving HTTP never take CPU from the broker.
 *
 * It provisions and enrolls the benchmark agents with keys generated inside the SoftHSM2 token of
 * the broker's data directory (the private keys never leave the token), pre-signs proofs through
 * the token right before each phase, and drives `GET /v1/whoami` with a closed loop of concurrent
 * keep-alive connections (undici Pool). Talks to the parent over the IPC channel only.
 */
import { Pool } from 'undici';
import { provisionAgent } from '../provisioner/provision.js';
import { BrokerClient, fetchDiscovery } from '@tessera-broker/sdk';
import { loadConfig } from '../src/config/config.js';
import { base64url } from '../src/crypto/encoding.js';
import { createProof, parseProofHeader, PROOF_SCHEME } from '../src/identity/proof.js';
import type { Signer } from '../src/keys/key-store.js';
import { KeyStores } from '../src/keys/registry.js';
import { nextParentMessage, sendToParent } from './parent-ipc.js';
import { runLoad, runPaced, summarizeLatencies, type LatencySummary } from './support.js';

// ---------------------------------------------------------------------------------------------
// Messages (shared with identity-bench.ts)
// ---------------------------------------------------------------------------------------------

export interface WorkerSetup {
  readonly type: 'setup';
  readonly agents: number;
}

export interface WorkerGo {
  readonly type: 'go';
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Hard cap on proofs signed for the timed window (and so on its requests). */
  readonly maxProofs: number;
  /** Paced (open-loop) phase after the window: this share of the window's rate, for pacedMs; 0 skips it. */
  readonly pacedFraction: number;
  readonly pacedMs: number;
  /** The bare verify server (bare-verify-server.ts), loaded first with the same clients, warm-up and window. */
  readonly bareUrl: string;
}

export interface WorkerReady {
  readonly type: 'ready';
  readonly brokerUrl: string;
  readonly identityIds: string[];
  /** A real proof signed in the token, for the bare verification loop: base64url fields. */
  readonly sample: { readonly signingInput: string; readonly signature: string; readonly publicKey: string };
  /** identity id -> base64url Ed25519 public key, for the bare verify server */
  readonly publicKeys: Record<string, string>;
  readonly setupMs: number;
}

export interface PhaseReport {
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  readonly elapsedMs: number;
  readonly requestsPerSecond: number;
  readonly exhausted: boolean;
  readonly latencyMs: LatencySummary;
}

export interface PacedReport extends PhaseReport {
  /** the offered arrival rate, requests/s over all clients */
  readonly offeredPerSecond: number;
  /** how late requests went out against the schedule */
  readonly sendLagMs: LatencySummary;
}

export interface WorkerResult {
  readonly type: 'result';
  /** The bare verify server's timed window. */
  readonly bare: PhaseReport;
  readonly warmup: PhaseReport;
  readonly window: PhaseReport;
  readonly paced: PacedReport | null;
  readonly proofsSigned: number;
  readonly signMicrosPerProof: number;
  readonly presignMs: number;
  /** Oldest proof age (s) at the end of the window: must stay well inside the 60 s iat window. */
  readonly maxProofAgeSeconds: number;
  /** Load generator's own CPU use during the window, as % of one core, and event-loop utilization. */
  readonly cpuPercent: number;
  readonly eventLoopUtilization: number;
  readonly statusCounts: Record<string, number>;
  readonly transportErrors: number;
  readonly mismatchedIdentities: number;
  readonly errorSamples: string[];
}

export type WorkerMessage =
  | WorkerReady
  | WorkerResult
  | { readonly type: 'phase'; readonly phase: 'bare' | 'bare-window-start' | 'bare-window-end' | 'presign-warmup' | 'warmup' | 'presign-window' | 'window-start' | 'window-end' | 'paced-start' | 'paced-end' }
  | { readonly type: 'error'; readonly message: string };

// ---------------------------------------------------------------------------------------------

interface Agent {
  readonly id: string;
  readonly signer: Signer;
}

interface SignedProof {
  readonly authorization: string;
  readonly identityId: string;
}

const WHOAMI_PATH = '/v1/whoami';
/** Proofs are valid for ±60 s around iat; keep every proof's age at use well below that. */
const MAX_PROOF_AGE_MS = 45_000;

const send = (message: WorkerMessage) => sendToParent(message);

async function main(): Promise<void> {
  // The parent going away (crash, Ctrl-C) must not leave this process running.
  process.on('disconnect', () => process.exit(2));
  const setup = await nextParentMessage<WorkerSetup>('setup');
  const setupStart = performance.now();

  const config = loadConfig(); // TESSERA_DATA_DIR / TESSERA_LISTEN from the parent; tessera.json from init
  if (!config.adminKeyUri) throw new Error('no admin key recorded by init');
  const keyStores = new KeyStores(config);
  let pool: Pool | undefined;
  let bare: Pool | undefined;
  try {
    const keyStore = await keyStores.get('pkcs11');
    const admin = await BrokerClient.connect(config.publicUrl, await keyStores.signer(config.adminKeyUri));
    const discovery = await fetchDiscovery(config.publicUrl);
    const brokerUrl = discovery.issuer;
    const audience = discovery.proof_audience;
    const whoamiUrl = brokerUrl + WHOAMI_PATH;

    // Provision + enroll: keys are generated inside the token; only their handles come back.
    const agents: Agent[] = [];
    for (let i = 0; i < setup.agents; i += 1) {
      const provisioned = await provisionAgent(admin, keyStore, { address: `bench-agent-${i}@bench.local`, attributes: { purpose: 'bench' } });
      const signer = await keyStores.signer(provisioned.key_uri);
      const client = await BrokerClient.connect(brokerUrl, signer);
      await client.request('POST', '/v1/enroll', { ticket: provisioned.ticket });
      agents.push({ id: provisioned.identity_id, signer });
    }

    const sampleProof = parseProofHeader(`${PROOF_SCHEME} ${await createProof(agents[0]!.signer, agents[0]!.id, audience, { method: 'GET', url: whoamiUrl, body: '' })}`);
    await send({
      type: 'ready',
      brokerUrl,
      identityIds: agents.map((agent) => agent.id),
      sample: {
        signingInput: base64url.encode(sampleProof.signingInput),
        signature: base64url.encode(sampleProof.signature),
        publicKey: base64url.encode(agents[0]!.signer.publicKey),
      },
      publicKeys: Object.fromEntries(agents.map((agent) => [agent.id, base64url.encode(agent.signer.publicKey)])),
      setupMs: performance.now() - setupStart,
    });

    const go = await nextParentMessage<WorkerGo>('go');

    // Round-robin over the agents; every proof has its own jti and the current iat.
    let signed = 0;
    let signMs = 0;
    const presign = async (count: number): Promise<{ proofs: SignedProof[]; signedAt: number }> => {
      const signedAt = Date.now();
      const start = performance.now();
      const proofs: SignedProof[] = new Array(count);
      for (let i = 0; i < count; i += 1) {
        const agent = agents[i % agents.length]!;
        const proof = await createProof(agent.signer, agent.id, audience, { method: 'GET', url: whoamiUrl, body: '' });
        proofs[i] = { authorization: `${PROOF_SCHEME} ${proof}`, identityId: agent.id };
      }
      signMs += performance.now() - start;
      signed += count;
      // Signing blocked this event loop for seconds: let the pools take in the keep-alive
      // connections the servers closed meanwhile, or the next requests race those closes.
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { proofs, signedAt };
    };

    pool = new Pool(brokerUrl, { connections: go.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
    const statusCounts: Record<string, number> = {};
    let transportErrors = 0;
    let mismatchedIdentities = 0;
    const errorSamples: string[] = [];
    const noteError = (text: string) => {
      if (errorSamples.length < 5) errorSamples.push(text.slice(0, 300));
    };
    const brokerPool = pool;
    bare = new Pool(go.bareUrl, { connections: go.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
    const barePool = bare;
    const request = async (proof: SignedProof, target: Pool = brokerPool): Promise<boolean> => {
      try {
        const response = await target.request({ path: WHOAMI_PATH, method: 'GET', headers: { authorization: proof.authorization } });
        const text = await response.body.text();
        statusCounts[response.statusCode] = (statusCounts[response.statusCode] ?? 0) + 1;
        if (response.statusCode !== 200) {
          noteError(`HTTP ${response.statusCode}: ${text}`);
          return false;
        }
        if (target === brokerPool && (JSON.parse(text) as { identity_id?: string }).identity_id !== proof.identityId) {
          mismatchedIdentities += 1;
          noteError(`200 for the wrong identity: ${text}`);
          return false;
        }
        return true;
      } catch (error) {
        transportErrors += 1;
        noteError(`transport: ${(error as Error).message}`);
        return false;
      }
    };
    /** Each proof once against the broker; `cycle` reuses them round-robin (the bare server checks neither jti nor iat). */
    const phase = async (proofs: SignedProof[], durationMs: number, target = brokerPool, cycle = false): Promise<PhaseReport> => {
      let next = 0;
      const result = await runLoad({
        concurrency: go.concurrency,
        durationMs,
        maxRequests: cycle ? go.maxProofs : proofs.length,
        next: () => proofs[cycle ? next++ % proofs.length : next++],
        send: (proof) => request(proof, target),
      });
      return {
        requests: result.sent,
        ok: result.ok,
        failed: result.failed,
        elapsedMs: result.elapsedMs,
        requestsPerSecond: (result.sent / result.elapsedMs) * 1000,
        exhausted: result.exhausted,
        latencyMs: summarizeLatencies(result.latenciesMs),
      };
    };

    // The baseline first, with the same clients and durations.
    await send({ type: 'phase', phase: 'bare' });
    const bareBatch = await presign(go.concurrency * 64);
    await phase(bareBatch.proofs, go.warmupMs, barePool, true);
    await send({ type: 'phase', phase: 'bare-window-start' });
    const bareWindow = await phase(bareBatch.proofs, go.durationMs, barePool, true);
    await send({ type: 'phase', phase: 'bare-window-end' });

    // Warm-up: JIT, connection set-up, SQLite page cache. Its rate sizes the timed window's batch.
    await send({ type: 'phase', phase: 'presign-warmup' });
    const warmupBatch = await presign(Math.max(go.concurrency * 4, Math.ceil((go.warmupMs / 1000) * 2500)));
    await send({ type: 'phase', phase: 'warmup' });
    const warmup = await phase(warmupBatch.proofs, go.warmupMs);

    // Enough proofs for 1.6x the warm-up rate over the window, bounded by the cap and by proof age.
    const signMsPerProof = signMs / signed;
    const ageBound = Math.floor((MAX_PROOF_AGE_MS - go.durationMs) / Math.max(signMsPerProof, 0.01));
    const wanted = Math.ceil(warmup.requestsPerSecond * (go.durationMs / 1000) * 1.6) + go.concurrency * 4;
    await send({ type: 'phase', phase: 'presign-window' });
    const windowBatch = await presign(Math.max(go.concurrency * 4, Math.min(wanted, go.maxProofs, ageBound)));

    // Status and error counts cover warm-up and window alike: a failed warm-up request fails the bench too.
    await send({ type: 'phase', phase: 'window-start' });
    const cpuBefore = process.cpuUsage();
    const eluBefore = performance.eventLoopUtilization();
    const window = await phase(windowBatch.proofs, go.durationMs);
    const cpu = process.cpuUsage(cpuBefore);
    const elu = performance.eventLoopUtilization(eluBefore);
    await send({ type: 'phase', phase: 'window-end' });
    const maxProofAgeSeconds = (Date.now() - windowBatch.signedAt) / 1000;

    // Paced: the same clients at a fixed arrival rate below saturation (open loop).
    let paced: PacedReport | null = null;
    if (go.pacedFraction > 0 && window.requestsPerSecond > 0) {
      const offered = window.requestsPerSecond * go.pacedFraction;
      const pacedBatch = await presign(Math.min(go.maxProofs, Math.ceil(offered * (go.pacedMs / 1000)) + go.concurrency));
      await send({ type: 'phase', phase: 'paced-start' });
      let next = 0;
      const result = await runPaced({
        concurrency: go.concurrency,
        durationMs: go.pacedMs,
        ratePerSecond: offered,
        maxRequests: pacedBatch.proofs.length,
        next: () => pacedBatch.proofs[next++],
        send: request,
      });
      await send({ type: 'phase', phase: 'paced-end' });
      paced = {
        requests: result.sent,
        ok: result.ok,
        failed: result.failed,
        elapsedMs: result.elapsedMs,
        requestsPerSecond: (result.sent / result.elapsedMs) * 1000,
        exhausted: result.exhausted,
        latencyMs: summarizeLatencies(result.latenciesMs),
        offeredPerSecond: offered,
        sendLagMs: summarizeLatencies(result.sendLagMs),
      };
    }

    await send({
      type: 'result',
      bare: bareWindow,
      warmup,
      window,
      paced,
      proofsSigned: signed,
      signMicrosPerProof: (signMs / signed) * 1000,
      presignMs: signMs,
      maxProofAgeSeconds,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / window.elapsedMs) * 100,
      eventLoopUtilization: elu.utilization,
      statusCounts,
      transportErrors,
      mismatchedIdentities,
      errorSamples,
    });
  } finally {
    await Promise.all([pool?.close(), bare?.close()]);
    await keyStores.close();
  }
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    try {
      await send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    } finally {
      process.exit(1);
    }
  },
);
