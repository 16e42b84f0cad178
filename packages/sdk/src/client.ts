import { type AutoRenewer, type AutoRenewOptions, type AutoRenewTimers, autoRenew } from './auto-renew.js';
import { BrokerClient, type ConnectOptions } from './broker-client.js';
import { createDelegation, listDelegations, revokeDelegation } from './delegation-api.js';
import { TesseraError } from './errors.js';
import { type Lease, leaseFromWire, type Renewal, renewalFromWire } from './lease.js';
import { issueLease, renewLease, revokeLease } from './lease-api.js';
import { type KeySettings, openSigner } from './signers/open-signer.js';
import type { OpenedSigner, Signer } from './signers/signer.js';
import { type Ttl, ttlSeconds } from './ttl.js';
import { createUserDelegation } from './user-delegation-api.js';
import type { DelegationView, RevokeDelegationResponse } from './wire/delegations.js';
import type { UserDelegationView } from './wire/user-delegations.js';
import type { IdentityView } from './wire/identities.js';
import type { LeaseCredential, LeaseState } from './wire/leases.js';

export interface ClientOptions extends KeySettings {
  /** The broker's URL, e.g. http://127.0.0.1:8700. Default: TESSERA_URL. */
  readonly broker?: string;
  /**
   * The identity key: a key URI (`pkcs11:token=...;object=...` or `aws-kms:...`) or an open Signer.
   * Default: TESSERA_KEY. A PKCS#11 key also needs its token's PIN (`pkcs11.pin`, TESSERA_PKCS11_PIN
   * or TESSERA_PKCS11_PIN_FILE); a KMS key uses the standard AWS settings (AWS_REGION, ...).
   */
  readonly key?: string | Signer;
  /**
   * Session keys (docs/PROTOCOL.md §3.1), on by default: the key signs one session certificate per
   * `lifetime` (default 15m, capped by the broker's maximum) and an in-memory Ed25519 key signs each
   * request, so a KMS key costs a few Sign calls an hour instead of one per request. `false` (or
   * TESSERA_SESSIONS=off) signs every request with the key itself. `timers`: tests decide when renewals run.
   */
  readonly sessions?: false | { readonly lifetime?: Ttl; readonly timers?: AutoRenewTimers; readonly onError?: (error: Error) => void };
}

export interface LeaseOptions {
  readonly role: string;
  /** Seconds or a duration such as '5m'; default: the grant's default TTL. */
  readonly ttl?: Ttl;
  /**
   * Lease under this delegation (`dlg_...`). Default: the caller's own grant, else the one active
   * delegation it holds for the backend role (several: `delegation_ambiguous`).
   */
  readonly delegation?: string;
}

export interface DelegateOptions {
  readonly backend: string;
  readonly role: string;
  /** At least as tight as the caller's own; left out: the caller's are inherited. */
  readonly constraints?: Readonly<Record<string, string>>;
  /** Seconds or a duration such as '30m'. */
  readonly ttl: Ttl;
  readonly purpose: string;
  /** The delegation the caller received and delegates from; default: its own grant, else the one delegation that applies. */
  readonly parent?: string;
}

/** What an agent asks to do for a user (`actFor()`): a backend role, for a while, for a reason. */
export interface ActForOptions {
  readonly backend: string;
  readonly role: string;
  /** At least as tight as the caller's grant; left out: the grant's are inherited. */
  readonly constraints?: Readonly<Record<string, string>>;
  /** Seconds or a duration such as '30m'; the broker caps it at the token's exp. */
  readonly ttl: Ttl;
  readonly purpose: string;
}

const optionalTtl = (ttl: Ttl | undefined) => (ttl === undefined ? undefined : ttlSeconds(ttl));

/** An option, else its environment variable, else a config_invalid error naming both. */
function required(value: string | undefined, variable: string, what: string): string {
  const found = value ?? (process.env[variable] || undefined);
  if (found === undefined) throw new TesseraError('config_invalid', `No ${what}: pass it to createClient() or set ${variable}.`);
  return found;
}

/** Sessions unless turned off by the option or TESSERA_SESSIONS=off. */
function sessionSettings(options: ClientOptions): ConnectOptions {
  if (options.sessions === false || (options.sessions === undefined && process.env.TESSERA_SESSIONS === 'off')) return {};
  const { lifetime, ...rest } = options.sessions ?? {};
  return { sessions: { ...rest, ...(lifetime !== undefined && { lifetimeSeconds: ttlSeconds(lifetime, 'sessions.lifetime') }) } };
}

/** One agent identity talking to one broker. Every request carries a fresh proof signed by the key. */
export class TesseraClient {
  readonly #broker: BrokerClient;
  /** Only when the client opened it (key given as a URI): closed by close(). */
  readonly #opened: OpenedSigner | undefined;
  readonly #renewers = new Set<AutoRenewer>();

  private constructor(broker: BrokerClient, opened: OpenedSigner | undefined) {
    this.#broker = broker;
    this.#opened = opened;
  }

  /** Use createClient(). */
  static async create(options: ClientOptions = {}): Promise<TesseraClient> {
    const brokerUrl = required(options.broker, 'TESSERA_URL', 'broker URL (e.g. http://127.0.0.1:8700)');
    const key = typeof options.key === 'object' ? options.key : required(options.key, 'TESSERA_KEY', 'identity key URI (pkcs11:... or aws-kms:...)');
    const connect = sessionSettings(options);
    if (typeof key !== 'string') return new TesseraClient(await BrokerClient.connect(brokerUrl, key, connect), undefined);
    const opened = await openSigner(key, options);
    try {
      return new TesseraClient(await BrokerClient.connect(brokerUrl, opened.signer, connect), opened);
    } catch (error) {
      await opened.close();
      throw error;
    }
  }

  /** RFC 7638 thumbprint of the identity key. */
  get identityId(): string {
    return this.#broker.identityId;
  }

  /** Leases a credential on `backend` under the caller's grant for `role`. */
  async lease<C extends LeaseCredential = LeaseCredential>(backend: string, options: LeaseOptions): Promise<Lease<C>> {
    return leaseFromWire(await issueLease<C>(this.#broker, backend, options.role, optionalTtl(options.ttl), options.delegation));
  }

  /**
   * Delegates part of the caller's authority to another enrolled agent (`delegatee`, its address).
   * The request, signed by the caller's key, is kept as evidence of the delegation.
   */
  delegate(delegatee: string, options: DelegateOptions): Promise<DelegationView> {
    return createDelegation(this.#broker, {
      delegatee,
      backend: options.backend,
      role: options.role,
      ttl_seconds: ttlSeconds(options.ttl),
      purpose: options.purpose,
      ...(options.constraints && { constraints: { ...options.constraints } }),
      ...(options.parent !== undefined && { parent: options.parent }),
    });
  }

  /**
   * Acts for a user: presents the user's token (an ID token or JWT access token from an issuer the
   * broker trusts) with the caller's proof, and gets a delegation rooted at the user. Leases under
   * it (`lease(..., {delegation})`) name the user in every audit event.
   */
  actFor(userToken: string, options: ActForOptions): Promise<UserDelegationView> {
    return createUserDelegation(this.#broker, {
      token: userToken,
      backend: options.backend,
      role: options.role,
      ttl_seconds: ttlSeconds(options.ttl),
      purpose: options.purpose,
      ...(options.constraints && { constraints: { ...options.constraints } }),
    });
  }

  /** The delegations the caller gave and received. */
  async delegations(): Promise<DelegationView[]> {
    return (await listDelegations(this.#broker)).delegations;
  }

  /** Revokes a delegation in the caller's chain, those below it, and the leases obtained through them. */
  revokeDelegation(delegationId: string, reason: string): Promise<RevokeDelegationResponse> {
    return revokeDelegation(this.#broker, delegationId, reason);
  }

  async renew(leaseId: string, options: { ttl?: Ttl } = {}): Promise<Renewal> {
    return renewalFromWire(await renewLease(this.#broker, leaseId, optionalTtl(options.ttl)));
  }

  /** Revokes the lease: the credential stops working (state `revocation-pending` while the upstream is down). */
  async revoke(leaseId: string): Promise<{ leaseId: string; state: LeaseState }> {
    const revoked = await revokeLease(this.#broker, leaseId);
    return { leaseId: revoked.lease_id, state: revoked.state };
  }

  whoami(): Promise<IdentityView> {
    return this.#broker.request<IdentityView>('GET', '/v1/whoami');
  }

  /** Keeps `lease` renewed in the background; see AutoRenewOptions. close() stops it too. */
  autoRenew(lease: Lease, options: AutoRenewOptions = {}): AutoRenewer {
    const renewer = autoRenew((leaseId, ttl) => this.renew(leaseId, { ttl }), lease, options);
    this.#renewers.add(renewer);
    void renewer.done.then(() => this.#renewers.delete(renewer));
    return renewer;
  }

  /** Stops every auto-renewal (waiting for renewals in flight), then closes the key it opened. */
  async close(): Promise<void> {
    await Promise.all([...this.#renewers].map((renewer) => renewer.stop()));
    this.#broker.close();
    await this.#opened?.close();
  }
}
