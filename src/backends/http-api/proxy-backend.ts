/**
 * Proxied HTTP API backends (`stripe`, `openai`, `http`): the root secret never leaves the broker.
 * A lease mints nothing upstream; it is a random lease token (only its SHA-256 is stored, with the
 * lease) that the agent presents to the broker's credential proxy (src/proxy/) as its API key. The
 * proxy checks the lease and its scope per request, then swaps in the real secret held here.
 */
import { randomToken, sha256Base64url } from '../../crypto/encoding.js';
import { TesseraError } from '../../errors.js';
import { BackendError, type CredentialBackend, type CredentialPlan, type IssuedCredential, type MintRequest } from '../credential-backend.js';
import type { ErrorFormat } from './error-format.js';
import { compileScope, type Constraints, type Scope, type ScopePreset } from './scopes.js';
import { callJson, expectSuccess, type SecretHeader, type UpstreamTarget, upstreamTarget } from './upstream-client.js';

export interface ProxyBackendConfig {
  readonly type: string;
  readonly upstreamUrl: string;
  /** The header carrying the real secret upstream, and its whole value (e.g. `Bearer sk_live_...`). */
  readonly secretHeader: SecretHeader;
  readonly presets: Readonly<Record<string, ScopePreset>>;
  readonly errorFormat: ErrorFormat;
  /** A GET path that must answer 2xx with the secret: checked before the backend is saved. */
  readonly probePath?: string;
  /** The credential proxy's public URL, handed to agents as `base_url`. */
  readonly proxyUrl: string;
}

/** Lease tokens: `tsk_` + 256 random bits. */
const newToken = () => `tsk_${randomToken(32)}`;
const MAX_CACHED_SCOPES = 1024;

export class ProxyBackend implements CredentialBackend {
  readonly type: string;
  readonly target: UpstreamTarget;
  readonly errorFormat: ErrorFormat;
  readonly secretHeader: SecretHeader;
  readonly #config: ProxyBackendConfig;
  /** Tokens between plan() and mint(), off the plan object so nothing can persist them by accident. */
  readonly #tokens = new WeakMap<CredentialPlan, string>();
  /** Compiled scopes by role and constraints (JSON as stored with the lease). */
  readonly #scopes = new Map<string, Scope>();

  constructor(config: ProxyBackendConfig) {
    this.type = config.type;
    this.#config = config;
    this.errorFormat = config.errorFormat;
    this.secretHeader = { name: config.secretHeader.name.toLowerCase(), value: config.secretHeader.value };
    this.target = upstreamTarget(config.upstreamUrl);
  }

  validateRole(role: string): void {
    if (!Object.hasOwn(this.#config.presets, role)) throw new TesseraError('invalid_request', `unknown scope "${role}" for ${this.type} backend`);
  }

  plan(request: MintRequest): CredentialPlan {
    this.validateRole(request.role);
    const token = newToken();
    const plan: CredentialPlan = { revocation: {}, tokenHash: sha256Base64url(token) };
    this.#tokens.set(plan, token);
    return plan;
  }

  async mint(_request: MintRequest, plan: CredentialPlan): Promise<IssuedCredential> {
    const token = this.#tokens.get(plan);
    if (token === undefined) throw new BackendError(`${this.type} backend: the plan was not made by this backend`, false);
    this.#tokens.delete(plan);
    return { base_url: this.#config.proxyUrl, api_key: token };
  }

  /** The proxy enforces the lease's expiry on every request: nothing upstream to move. */
  async renew(): Promise<void> {}

  /** Nothing exists upstream: once the lease is no longer active, the proxy refuses its token. */
  async revoke(): Promise<void> {}

  async check(): Promise<void> {
    if (this.#config.probePath === undefined) return;
    const operation = `${this.type} backend: connection check`;
    const reply = await callJson(this.target, operation, { method: 'GET', path: this.#config.probePath, auth: this.secretHeader });
    expectSuccess(operation, reply);
  }

  async close(): Promise<void> {
    await this.target.pool.close();
  }

  /** The scope of a lease: its preset (role) compiled with the constraints it was granted. */
  scope(role: string, constraintsJson: string): Scope {
    const key = `${role}\n${constraintsJson}`;
    let scope = this.#scopes.get(key);
    if (!scope) {
      const preset = Object.hasOwn(this.#config.presets, role) ? this.#config.presets[role]! : { description: '', rules: [], constraints: {} };
      scope = compileScope(preset, JSON.parse(constraintsJson) as Constraints);
      if (this.#scopes.size >= MAX_CACHED_SCOPES) this.#scopes.clear();
      this.#scopes.set(key, scope);
    }
    return scope;
  }
}
