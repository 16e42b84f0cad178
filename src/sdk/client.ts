import { BrokerClient } from '../client/broker-client.js';
import { type Config, loadConfig } from '../config/config.js';
import type { IdentityView } from '../identity/identity.js';
import type { Signer } from '../keys/key-store.js';
import { KeyStores } from '../keys/registry.js';
import { type AutoRenewer, type AutoRenewOptions, autoRenew } from './auto-renew.js';
import { type Lease, leaseFromWire, type Renewal, renewalFromWire } from './lease.js';
import { issueLease, renewLease, revokeLease } from './lease-api.js';
import { type Ttl, ttlSeconds } from './ttl.js';
import type { LeaseCredential, LeaseState } from './wire.js';

export interface ClientOptions {
  /** The broker's URL, e.g. http://127.0.0.1:8700. */
  readonly broker: string;
  /** The identity key: a key URI (pkcs11:... / aws-kms:...) or an open Signer. */
  readonly key: string | Signer;
  /**
   * Where the key store for a key URI is: data dir and PKCS#11 settings. Default: the standard
   * Tessera environment (TESSERA_DATA_DIR, TESSERA_PKCS11_*, AWS_*) and the data dir's tessera.json.
   */
  readonly config?: Pick<Config, 'dataDir' | 'pkcs11'>;
}

export interface LeaseOptions {
  readonly role: string;
  /** Seconds or a duration such as '5m'; default: the grant's default TTL. */
  readonly ttl?: Ttl;
}

const optionalTtl = (ttl: Ttl | undefined) => (ttl === undefined ? undefined : ttlSeconds(ttl));

/** One agent identity talking to one broker. Every request carries a fresh proof signed by the key. */
export class TesseraClient {
  readonly #broker: BrokerClient;
  /** Only when the client opened them (key given as a URI): closed by close(). */
  readonly #keyStores: KeyStores | undefined;
  readonly #renewers = new Set<AutoRenewer>();

  private constructor(broker: BrokerClient, keyStores: KeyStores | undefined) {
    this.#broker = broker;
    this.#keyStores = keyStores;
  }

  /** Use createClient(). */
  static async create(options: ClientOptions): Promise<TesseraClient> {
    if (typeof options.key !== 'string') return new TesseraClient(await BrokerClient.connect(options.broker, options.key), undefined);
    const keyStores = new KeyStores(options.config ?? loadConfig());
    try {
      return new TesseraClient(await BrokerClient.connect(options.broker, await keyStores.signer(options.key)), keyStores);
    } catch (error) {
      await keyStores.close();
      throw error;
    }
  }

  /** RFC 7638 thumbprint of the identity key. */
  get identityId(): string {
    return this.#broker.identityId;
  }

  /** Leases a credential on `backend` under the caller's grant for `role`. */
  async lease<C extends LeaseCredential = LeaseCredential>(backend: string, options: LeaseOptions): Promise<Lease<C>> {
    return leaseFromWire(await issueLease<C>(this.#broker, backend, options.role, optionalTtl(options.ttl)));
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

  /** Stops every auto-renewal (waiting for renewals in flight), then closes the key store it opened. */
  async close(): Promise<void> {
    await Promise.all([...this.#renewers].map((renewer) => renewer.stop()));
    await this.#keyStores?.close();
  }
}
