/**
 * The environment variables `tessera run` hands a command for each lease, by backend type: the
 * names each ecosystem's official clients and tools already read, so the command needs no Tessera
 * code. Keyed by BackendType: a new backend type fails to compile until it says what it sets.
 */
import type { BackendType } from '../../backends/registry.js';
import { TesseraError } from '../../errors.js';
import { isPostgresCredential, type Lease } from '@tessera-broker/sdk';

type Variables = Record<string, string>;

interface EnvironmentMapping {
  variables(lease: Lease): Variables;
  /** Generic types prefix their variables with the backend's name even without `NAME=`. */
  readonly prefixedByBackend?: boolean;
}

function apiCredential(lease: Lease): { baseUrl: string; apiKey: string } {
  const { base_url: baseUrl, api_key: apiKey } = lease.credential as Record<string, unknown>;
  if (typeof baseUrl !== 'string' || typeof apiKey !== 'string') throw unexpectedShape(lease);
  return { baseUrl: baseUrl.replace(/\/+$/, ''), apiKey };
}

const unexpectedShape = (lease: Lease) => new TesseraError('internal', `The ${lease.backendType} credential of lease ${lease.id} has an unexpected shape.`);

/** libpq's variables, and the URL form most drivers and ORMs take. */
function postgres(lease: Lease): Variables {
  const credential = lease.credential;
  if (!isPostgresCredential(credential)) throw unexpectedShape(lease);
  const { host, port, database, username, password } = credential;
  // An IPv6 address goes in brackets; a socket directory is percent-encoded (libpq reads both).
  const urlHost = host.includes(':') ? `[${host}]` : encodeURIComponent(host);
  const url = `postgresql://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${urlHost}:${port}/${encodeURIComponent(database)}`;
  return { DATABASE_URL: url, PGHOST: host, PGPORT: String(port), PGDATABASE: database, PGUSER: username, PGPASSWORD: password };
}

/** The official OpenAI clients read these two; their base URL includes the API version. */
function openai(lease: Lease): Variables {
  const { baseUrl, apiKey } = apiCredential(lease);
  return { OPENAI_BASE_URL: `${baseUrl}/v1`, OPENAI_API_KEY: apiKey };
}

/** Stripe's clients call the base `api_base` (no version: their paths start with /v1). */
function stripe(lease: Lease): Variables {
  const { baseUrl, apiKey } = apiCredential(lease);
  return { STRIPE_API_KEY: apiKey, STRIPE_API_BASE: baseUrl };
}

function genericApi(lease: Lease): Variables {
  const { baseUrl, apiKey } = apiCredential(lease);
  return { BASE_URL: baseUrl, API_KEY: apiKey };
}

const MAPPINGS: Readonly<Record<BackendType, EnvironmentMapping>> = {
  postgres: { variables: postgres },
  openai: { variables: openai },
  'openai-admin': { variables: openai },
  stripe: { variables: stripe },
  http: { variables: genericApi, prefixedByBackend: true },
};

/** `crm-api` -> `CRM_API`. */
const variablePrefix = (backend: string) => backend.toUpperCase().replace(/[^A-Z0-9_]/g, '_');

/**
 * The variables for one lease: the type's own names, each prefixed `NAME_` when the lease was
 * given a name. A type this CLI does not know yet (a newer broker) is passed on like `http`.
 */
export function leaseEnvironment(lease: Lease, name?: string): Variables {
  const mapping: EnvironmentMapping = Object.hasOwn(MAPPINGS, lease.backendType) ? MAPPINGS[lease.backendType as BackendType] : MAPPINGS.http;
  const prefix = name ?? (mapping.prefixedByBackend ? variablePrefix(lease.backend) : undefined);
  const variables = mapping.variables(lease);
  if (prefix === undefined) return variables;
  return Object.fromEntries(Object.entries(variables).map(([variable, value]) => [`${prefix}_${variable}`, value]));
}
