/**
 * `openai-admin`: real, minted OpenAI keys. With an admin key, each lease creates a service account
 * in one project (OpenAI's Admin API returns its API key once); revocation and expiry delete it.
 * The service account's name is chosen in plan() and recorded with the lease intent, so revoke()
 * (and reconcile after a crash between create and record) finds it by name: nothing minted
 * without a record. The agent talks to OpenAI directly (`base_url` = the real API).
 */
import { createHash } from 'node:crypto';
import { TesseraError } from '../../errors.js';
import {
  BackendError,
  type CredentialBackend,
  type CredentialPlan,
  type IssuedCredential,
  type MintRequest,
  type RevocationHandle,
} from '../credential-backend.js';
import { callJson, expectSuccess, type SecretHeader, type UpstreamTarget, upstreamTarget } from './upstream-client.js';

export interface OpenAIAdminConfig {
  readonly adminKey: string;
  readonly projectId: string;
  /** The real API by default; tests and OpenAI-compatible servers override it. */
  readonly upstreamUrl: string;
}

export const SERVICE_ACCOUNT_ROLE = 'service-account';
const LIST_PAGE = 100;
const MAX_PAGES = 100;

interface ServiceAccount {
  readonly id: string;
  readonly name: string;
}

interface ServiceAccountPage {
  readonly data?: readonly ServiceAccount[];
  readonly has_more?: boolean;
  readonly last_id?: string;
}

/** Unique per lease and recognisable in OpenAI's console. */
const accountName = (leaseId: string) => `tessera-${createHash('sha256').update(leaseId).digest('hex').slice(0, 24)}`;

function handleString(revocation: RevocationHandle, key: string): string {
  const value = revocation[key];
  if (typeof value !== 'string' || value === '') throw new BackendError(`openai-admin backend: revocation handle has no ${key}`, false);
  return value;
}

export class OpenAIAdminBackend implements CredentialBackend {
  readonly type = 'openai-admin';
  readonly #target: UpstreamTarget;
  readonly #auth: SecretHeader;
  readonly #projectId: string;

  constructor(config: OpenAIAdminConfig) {
    this.#target = upstreamTarget(config.upstreamUrl, 16);
    this.#auth = { name: 'authorization', value: `Bearer ${config.adminKey}` };
    this.#projectId = config.projectId;
  }

  validateRole(role: string): void {
    if (role !== SERVICE_ACCOUNT_ROLE) throw new TesseraError('invalid_request', `unknown role "${role}" for openai-admin backend`);
  }

  plan(request: MintRequest): CredentialPlan {
    this.validateRole(request.role);
    return { revocation: { project_id: this.#projectId, name: accountName(request.leaseId) } };
  }

  async mint(_request: MintRequest, plan: CredentialPlan): Promise<IssuedCredential> {
    const projectId = handleString(plan.revocation, 'project_id');
    const operation = 'openai-admin backend: create service account';
    const reply = await callJson(this.#target, operation, {
      method: 'POST',
      path: this.#accountsPath(projectId),
      auth: this.#auth,
      body: { name: handleString(plan.revocation, 'name') },
    });
    expectSuccess(operation, reply);
    const key = (reply.body as { api_key?: { value?: unknown } } | undefined)?.api_key?.value;
    // The issuer revokes (deletes by name) whatever a failed mint may have created.
    if (typeof key !== 'string' || key === '') throw new BackendError(`${operation}: the reply carries no API key`, false);
    return { base_url: this.#target.url, api_key: key };
  }

  /** Service account keys do not expire upstream: the reaper deletes the account at expiry. */
  async renew(): Promise<void> {}

  /** Deletes every service account with the planned name (a retried create may have made two). */
  async revoke(revocation: RevocationHandle): Promise<void> {
    const projectId = handleString(revocation, 'project_id');
    const name = handleString(revocation, 'name');
    for (const account of await this.#accountsNamed(projectId, name)) {
      const operation = 'openai-admin backend: delete service account';
      const reply = await callJson(this.#target, operation, {
        method: 'DELETE',
        path: `${this.#accountsPath(projectId)}/${encodeURIComponent(account.id)}`,
        auth: this.#auth,
      });
      if (reply.status !== 404) expectSuccess(operation, reply); // already gone counts as revoked
    }
  }

  async check(): Promise<void> {
    const operation = 'openai-admin backend: connection check';
    expectSuccess(operation, await callJson(this.#target, operation, { method: 'GET', path: `${this.#accountsPath(this.#projectId)}?limit=1`, auth: this.#auth }));
  }

  async close(): Promise<void> {
    await this.#target.pool.close();
  }

  #accountsPath(projectId: string): string {
    return `/v1/organization/projects/${encodeURIComponent(projectId)}/service_accounts`;
  }

  async #accountsNamed(projectId: string, name: string): Promise<ServiceAccount[]> {
    const operation = 'openai-admin backend: list service accounts';
    const found: ServiceAccount[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const query = `?limit=${LIST_PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const reply = await callJson(this.#target, operation, { method: 'GET', path: this.#accountsPath(projectId) + query, auth: this.#auth });
      expectSuccess(operation, reply);
      const body = (reply.body ?? {}) as ServiceAccountPage;
      found.push(...(body.data ?? []).filter((account) => account.name === name));
      if (!body.has_more || !body.last_id) return found;
      after = body.last_id;
    }
    throw new BackendError(`${operation}: more than ${MAX_PAGES * LIST_PAGE} service accounts`, false);
  }
}
