import { KMSClient, type KMSClientConfig } from '@aws-sdk/client-kms';
import { type DevKms, startDevKms, type DevKmsOptions } from '../../src/devkms/server.js';
import { KmsKeyStore } from '../../src/keys/kms-key-store.js';

export interface LocalKms {
  readonly url: string;
  readonly region: string;
  /** The environment that points the standard AWS SDK chain at this endpoint. */
  readonly env: Readonly<Record<'AWS_ENDPOINT_URL_KMS' | 'AWS_REGION' | 'AWS_ACCESS_KEY_ID' | 'AWS_SECRET_ACCESS_KEY', string>>;
  /** An unmodified SDK client talking HTTP to the endpoint. */
  client(overrides?: Partial<KMSClientConfig>): KMSClient;
  /** A fresh store on a fresh client (KmsKeyStore.close() destroys its client). */
  openStore(overrides?: Partial<KMSClientConfig>): KmsKeyStore;
  /** Requests the endpoint received per operation, and how many it throttled. */
  counts: DevKms['counts'];
  stop(): Promise<void>;
}

/** Starts a dev KMS on a random loopback port. */
export async function startLocalKms(options: DevKmsOptions = {}): Promise<LocalKms> {
  const server = await startDevKms({ port: 0, ...options });
  const { url, region } = server;
  const client = (overrides: Partial<KMSClientConfig> = {}) =>
    new KMSClient({ endpoint: url, region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, ...overrides });
  return {
    url,
    region,
    env: { AWS_ENDPOINT_URL_KMS: url, AWS_REGION: region, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' },
    client,
    openStore: (overrides) => new KmsKeyStore(client(overrides), { region, endpoint: url }),
    counts: () => server.counts(),
    stop: () => server.close(),
  };
}
