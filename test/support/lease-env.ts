/**
 * Helpers for lease tests: an HTTP client that signs proofs by the broker's (movable) clock and
 * records every response body, agents that enroll through it, upstream databases and logins as a
 * leased PostgreSQL role with the official `pg` client.
 */
import { databaseOf, groupNameFor } from '../../src/backends/postgres-backend.js';
import pg from 'pg';
import { expect } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { createProof, PROOF_SCHEME } from '../../src/identity/proof.js';
import { createSessionCertificate, keyThumbprint, memorySessionSigner } from '@tessera-broker/sdk';
import type { Signer } from '../../src/keys/key-store.js';
import type { LeaseRequest } from '../../src/leases/issuer.js';
import type { PostgresCredential, SessionResponse } from '@tessera-broker/sdk/wire';
import type { TestBroker } from './broker.js';
import { withClient } from './postgres.js';

export { withClient };

export interface Reply<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
}

export type { PostgresCredential };

export interface IssuedLease {
  readonly lease_id: string;
  readonly backend: string;
  readonly backend_type: string;
  readonly role: string;
  readonly issued_at: string;
  readonly expires_at: string;
  readonly renewable: boolean;
  readonly credential: PostgresCredential;
}

/** A session key an agent registered (docs/PROTOCOL.md §3.1): proofs then name `id` and are signed by `signer`. */
export interface TestSession {
  readonly id: string;
  readonly signer: Signer;
}

export interface SessionTerms {
  readonly generation: number;
  /** exp - iat; default 15 minutes */
  readonly lifetimeSeconds?: number;
  /** who signs the certificate; default the agent's primary key */
  readonly certifiedBy?: Signer;
}

/** Every response body any TestAgent received, to search for leaked secrets. */
export const responseLog: string[] = [];

export class TestAgent {
  private constructor(
    readonly baseUrl: string,
    readonly identityId: string,
    readonly address: string,
    private readonly signer: Signer,
    private readonly clock: Clock,
    /** Where requests go; proofs still name baseUrl (a replica behind a load balancer at baseUrl). */
    private readonly origin: string = baseUrl,
    /** Sign with this session key instead of the primary key. */
    readonly session?: TestSession,
  ) {}

  static async create(baseUrl: string, signer: Signer, address: string, clock: Clock): Promise<TestAgent> {
    return new TestAgent(baseUrl, await keyThumbprint(signer.publicKey), address, signer, clock);
  }

  /** The same agent sending its requests to `origin` (one replica) with proofs for baseUrl. */
  via(origin: string): TestAgent {
    return new TestAgent(this.baseUrl, this.identityId, this.address, this.signer, this.clock, origin, this.session);
  }

  /** The same agent signing its proofs with a session key (kid = the session id). */
  withSession(session: TestSession): TestAgent {
    return new TestAgent(this.baseUrl, this.identityId, this.address, this.signer, this.clock, this.origin, session);
  }

  /** Certifies a fresh in-memory session key (iat by the broker's clock) and registers it with a primary-key proof. */
  async startSession(terms: SessionTerms): Promise<{ reply: Reply<SessionResponse>; session: TestSession }> {
    const key = memorySessionSigner();
    const iat = Math.floor(this.clock.now() / 1000);
    const certificate = await createSessionCertificate(terms.certifiedBy ?? this.signer, this.identityId, key.publicKey, { iat, exp: iat + (terms.lifetimeSeconds ?? 900), gen: terms.generation });
    const primary = new TestAgent(this.baseUrl, this.identityId, this.address, this.signer, this.clock, this.origin);
    const reply = await primary.send<SessionResponse>('POST', '/v1/sessions', { certificate });
    return { reply, session: { id: reply.body.session_id, signer: key } };
  }

  /** A proof for one request, fresh by the broker's clock; pass it to send() to replay it. */
  proof(method: string, path: string, payload = ''): Promise<string> {
    const target = { method, url: this.baseUrl + path, body: payload };
    const now = Math.floor(this.clock.now() / 1000);
    if (this.session) return createProof(this.session.signer, this.identityId, this.baseUrl, target, now, this.session.id);
    return createProof(this.signer, this.identityId, this.baseUrl, target, now);
  }

  async send<T = Record<string, unknown>>(method: string, path: string, body?: unknown, proof?: string): Promise<Reply<T>> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `${PROOF_SCHEME} ${proof ?? (await this.proof(method, path, payload))}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(this.origin + path, { method, headers, body: body === undefined ? undefined : payload });
    const text = await response.text();
    responseLog.push(text);
    return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
  }

  /** send() that requires `status`; returns the body. */
  async expect<T = Record<string, unknown>>(status: number, method: string, path: string, body?: unknown): Promise<T> {
    const reply = await this.send<T>(method, path, body);
    expect(reply, `${method} ${path}`).toMatchObject({ status });
    return reply.body;
  }

  lease(backend: string, role: string, ttlSeconds?: number): Promise<IssuedLease> {
    return this.expect<IssuedLease>(201, 'POST', '/v1/leases', { backend, role, ...(ttlSeconds !== undefined && { ttl_seconds: ttlSeconds }) });
  }
}

export async function adminAgent(env: TestBroker): Promise<TestAgent> {
  return TestAgent.create(env.url, await env.keyStores.signer(env.config.adminKeyUri!), 'admin@tessera.local', env.clock);
}

/** Provisions and enrolls an agent identity. */
export async function enrolledAgent(env: TestBroker, address: string, attributes: Record<string, string> = {}): Promise<TestAgent> {
  return (await enrolledAgentWithKey(env, address, attributes)).agent;
}

/** enrolledAgent() and its key URI, for driving the CLI as that agent. */
export async function enrolledAgentWithKey(env: TestBroker, address: string, attributes: Record<string, string> = {}): Promise<{ agent: TestAgent; keyUri: string }> {
  const provisioned = await env.provision(address, attributes);
  const agent = await TestAgent.create(env.url, await env.keyStores.signer(provisioned.key_uri), address, env.clock);
  await agent.expect(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
  return { agent, keyUri: provisioned.key_uri };
}

/** Opens a session as a leased role; a terminated session must not crash the test worker. */
export async function login(credential: PostgresCredential): Promise<pg.Client> {
  const client = new pg.Client({ ...credential, user: credential.username, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Resolves with the error a login attempt fails with (and fails the test if it succeeds). */
export async function loginFails(credential: PostgresCredential): Promise<Error & { code?: string }> {
  const client = await login(credential).catch((error: Error) => error);
  if (client instanceof pg.Client) {
    await client.end();
    throw new Error(`role ${credential.username} can still log in`);
  }
  return client;
}

/** True once the session no longer answers (terminated by revocation). */
export async function sessionIsGone(session: pg.Client): Promise<boolean> {
  return session.query('SELECT 1').then(
    () => false,
    () => true,
  );
}


/** Leased roles (`tessera_<role>_<16 hex>`; not the group roles) that exist in the cluster at `url`. */
export async function tesseraRoles(url: string): Promise<string[]> {
  return withClient(url, async (client) => (await client.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname ~ '^tessera_.*_[0-9a-f]{16}$'")).rows.map((r) => r.rolname));
}

/**
 * The leased roles of `backend`'s default roles on the database at `url`: the login members of its
 * group roles. Roles are cluster-wide, so this leaves out other tests' leases on the shared cluster.
 */
export async function leaseRolesOf(url: string, backend: string): Promise<string[]> {
  const groups = ['readonly', 'readwrite'].map((role) => groupNameFor(databaseOf(url), backend, role));
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ rolname: string }>(
      `SELECT member.rolname FROM pg_auth_members m
         JOIN pg_roles grp ON grp.oid = m.roleid JOIN pg_roles member ON member.oid = m.member
        WHERE grp.rolname = ANY($1) AND member.rolcanlogin ORDER BY member.rolname`,
      [groups],
    );
    return rows.map((row) => row.rolname);
  });
}

/**
 * Issues `count` leases of one identity through the broker's real issuer and backend, in-process
 * and `concurrency` at a time: for tests about many live leases, not about HTTP or proofs.
 */
export async function issueInProcess(env: TestBroker, address: string, count: number, request: LeaseRequest, concurrency = 16): Promise<void> {
  const identity = await env.broker.identities.getByAddress(address);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) await env.broker.leases.issuer.issue(identity, request);
    }),
  );
}

/** Seeds an upstream database: a public table the roles may read, a private schema they may not. */
export async function seedUpstream(url: string): Promise<void> {
  await withClient(url, (client) =>
    client.query(`
      CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
      INSERT INTO items (name) VALUES ('alpha'), ('beta');
      CREATE SCHEMA private;
      CREATE TABLE private.payroll (employee text, salary int);
      INSERT INTO private.payroll VALUES ('ada', 100);
    `),
  );
}

/** Polls until `check` passes or `timeoutMs` runs out. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
