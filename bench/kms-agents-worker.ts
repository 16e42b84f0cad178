/**
 * Agents for the KMS section (kms-bench.ts), run as their own process (pinned to the load CPU when
 * it can be). It provisions and enrolls the same number of agents with keys in the dev KMS and in
 * the broker's SoftHSM2 token, opens each as an agent would (createClient from the SDK, on its key
 * URI: the SDK's own KMS and PKCS#11 signers), then runs timed windows in which every agent calls
 * `whoami()` (GET /v1/whoami, the cheapest authenticated route) back to back. Each window is one
 * store and one session setting; the windows alternate so that both stores see the same machine.
 * Talks to the parent over the IPC channel only.
 */
import { createClient, type TesseraClient } from '@tessera-broker/sdk';
import { BrokerClient } from '@tessera-broker/sdk';
import { provisionAgent } from '../provisioner/provision.js';
import { loadConfig } from '../src/config/config.js';
import { KeyStores } from '../src/keys/registry.js';
import { nextParentMessage, sendToParent } from './parent-ipc.js';
import { type LatencySummary, summarizeLatencies } from './support.js';

export type AgentStore = 'kms' | 'softhsm';

/** One timed window: which agents, and whether they sign with session keys. */
export interface WindowPlan {
  readonly store: AgentStore;
  readonly sessions: boolean;
}

export interface AgentsSetup {
  readonly type: 'setup';
  readonly agents: number;
}

export interface AgentsGo {
  readonly type: 'go';
  /** The windows, in order; the parent repeats its modes in rounds so they interleave. */
  readonly windows: readonly WindowPlan[];
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Session lifetime for the windows with sessions. */
  readonly sessionLifetimeSeconds: number;
}

export interface AgentsReady {
  readonly type: 'ready';
  readonly setupMs: number;
}

export interface WindowReport extends WindowPlan {
  readonly ok: number;
  readonly failed: number;
  readonly elapsedMs: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: LatencySummary;
  /** Failed requests by error code (e.g. key_store_error: KMS throttling outlasted the SDK's retries). */
  readonly failures: Record<string, number>;
  readonly errorSamples: string[];
}

export interface AgentsResult {
  readonly type: 'result';
  readonly windows: WindowReport[];
}

export type AgentsMessage =
  | AgentsReady
  | AgentsResult
  | { readonly type: 'warmup-start' | 'window-start' | 'window-end'; readonly index: number }
  | { readonly type: 'error'; readonly message: string };

const send = (message: AgentsMessage) => sendToParent(message);

interface Agent {
  readonly identityId: string;
  readonly keyUri: string;
}

async function main(): Promise<void> {
  process.on('disconnect', () => process.exit(2));
  const setup = await nextParentMessage<AgentsSetup>('setup');
  const setupStart = performance.now();

  const config = loadConfig(); // TESSERA_DATA_DIR / TESSERA_LISTEN from the parent; tessera.json from init
  if (!config.adminKeyUri) throw new Error('no admin key recorded by init');
  const keyStores = new KeyStores(config);
  const clients = new Map<string, TesseraClient>();
  try {
    const admin = await BrokerClient.connect(config.publicUrl, await keyStores.signer(config.adminKeyUri));
    const agents: Record<AgentStore, Agent[]> = { kms: [], softhsm: [] };
    for (const store of ['kms', 'softhsm'] as const) {
      const keyStore = await keyStores.get(store === 'kms' ? 'kms' : 'pkcs11');
      for (let i = 0; i < setup.agents; i += 1) {
        const provisioned = await provisionAgent(admin, keyStore, { address: `bench-${store}-agent-${i}@bench.local`, attributes: { purpose: 'bench' } });
        const enrolling = await BrokerClient.connect(config.publicUrl, await keyStores.signer(provisioned.key_uri));
        await enrolling.request('POST', '/v1/enroll', { ticket: provisioned.ticket });
        agents[store].push({ identityId: provisioned.identity_id, keyUri: provisioned.key_uri });
      }
    }
    await send({ type: 'ready', setupMs: performance.now() - setupStart });

    const go = await nextParentMessage<AgentsGo>('go');
    // Session keys (issue 13 §1) on or off explicitly: the SDK's default is on.
    const sessionOption = (sessions: boolean) => (sessions ? { lifetime: go.sessionLifetimeSeconds } : false);
    // The agents' own SDK signers: PKCS#11 sessions on the token, KMS clients on the standard AWS settings.
    const pkcs11 = { module: config.pkcs11.module, pin: config.pkcs11.pin, pinFile: config.pkcs11.pinFile };
    const clientFor = async (agent: Agent, sessions: boolean): Promise<TesseraClient> => {
      const key = `${agent.keyUri} ${sessions}`;
      let client = clients.get(key);
      if (!client) {
        client = await createClient({ broker: config.publicUrl, key: agent.keyUri, pkcs11, sessions: sessionOption(sessions) });
        clients.set(key, client);
      }
      return client;
    };
    const windows: WindowReport[] = [];
    for (const [index, plan] of go.windows.entries()) {
      await send({ type: 'warmup-start', index });
      const fleet = await Promise.all(agents[plan.store].map(async (agent) => ({ agent, client: await clientFor(agent, plan.sessions) })));
      await drive(fleet, go.warmupMs); // connections, JIT, and with sessions the first session of each agent
      await send({ type: 'window-start', index });
      const run = await drive(fleet, go.durationMs);
      await send({ type: 'window-end', index });
      windows.push({ ...plan, ...run });
    }
    await send({ type: 'result', windows });
  } finally {
    await Promise.allSettled([...clients.values()].map((client) => client.close()));
    await keyStores.close();
  }
}

/** Every agent calls whoami() back to back (one request in flight each) until the deadline. */
async function drive(fleet: readonly { agent: Agent; client: TesseraClient }[], durationMs: number): Promise<Omit<WindowReport, keyof WindowPlan>> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const errorSamples: string[] = [];
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    fleet.map(async ({ agent, client }) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const view = await client.whoami();
          if (view.identity_id !== agent.identityId) throw Object.assign(new Error(`whoami answered for ${view.identity_id}`), { code: 'wrong_identity' });
          ok += 1;
          latencies.push(performance.now() - t0);
        } catch (error) {
          failed += 1;
          const code = String((error as { code?: unknown }).code ?? (error as Error).name);
          failures[code] = (failures[code] ?? 0) + 1;
          if (errorSamples.length < 5) errorSamples.push(`${code}: ${(error as Error).message}`.slice(0, 300));
        }
      }
    }),
  );
  const elapsedMs = performance.now() - start;
  return { ok, failed, elapsedMs, requestsPerSecond: (ok / elapsedMs) * 1000, latencyMs: summarizeLatencies(Float64Array.from(latencies)), failures, errorSamples };
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    await send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }).catch(() => {});
    process.exit(1);
  },
);
