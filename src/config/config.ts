import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { TesseraError } from '../errors.js';
import { proxyTrust } from '../http/client-address.js';
import type { KeyStoreKind } from '../keys/key-store.js';
import { parseDuration } from '@tessera-broker/sdk';

/**
 * One validated configuration object. Sources, strongest first: command-line flags, environment
 * (TESSERA_*), the data directory's tessera.json written by `tessera init`, defaults. A bad value
 * stops start-up with a message naming the setting.
 */

const duration = z
  .string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: `must be a duration such as 30s, 10m or 1h (got "${text}")` });
      return z.NEVER;
    }
    return ms;
  });

/** `host:port` or `[v6]:port`, as TESSERA_LISTEN is written (and a broker URL may be: src/cli/context.ts). */
export const HOST_PORT = /^(?:[^\s/:]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/;

const hostPort = z
  .string()
  .regex(HOST_PORT, 'must be host:port')
  .refine((address) => {
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'the port must be 1 to 65535');

/** TESSERA_TRUSTED_PROXIES: comma-separated addresses and CIDR ranges (src/http/client-address.ts). */
const addressList = z.string().transform((text, ctx) => {
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  try {
    proxyTrust(entries);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `must be IP addresses or CIDR ranges separated by commas (${(error as Error).message})` });
    return z.NEVER;
  }
  return entries;
});

const schema = z.object({
  dataDir: z.string().min(1),
  databaseUrl: z.string().regex(/^(sqlite:|postgres(ql)?:\/\/)/, 'must start with sqlite: or postgres://'),
  listen: hostPort,
  publicUrl: z.url().transform((url) => url.replace(/\/+$/, '')),
  /** the credential proxy's listener and the base URL agents' SDKs use for it (src/proxy/) */
  proxyListen: hostPort,
  proxyPublicUrl: z.url().transform((url) => url.replace(/\/+$/, '')),
  keystore: z.enum(['pkcs11', 'kms']),
  pkcs11: z.object({
    module: z.string().optional(),
    token: z.string().min(1).max(32),
    pin: z.string().min(4).optional(),
    pinFile: z.string().optional(),
  }),
  ticketTtlMs: duration,
  ticketMaxTtlMs: duration,
  credentialTtlMs: duration,
  /** the longest session a certificate may ask for (exp - iat), at most 1 h (src/sessions/) */
  sessionMaxLifetimeMs: duration.refine((ms) => ms >= 60_000 && ms <= 3_600_000, 'must be between 1m and 1h'),
  /** sign an audit checkpoint after this many events, or after auditCheckpointIntervalMs (src/audit/checkpoints.ts) */
  auditCheckpointEvery: z.coerce.number().int().min(1),
  auditCheckpointIntervalMs: duration,
  /** what both listeners allow a client: slow requests and connections (src/http/server-limits.ts) */
  limits: z.object({
    headersTimeoutMs: duration,
    bodyTimeoutMs: duration,
    keepAliveTimeoutMs: duration,
    maxConnections: z.coerce.number().int().min(1),
    maxConnectionsPerAddress: z.coerce.number().int().min(0),
  }),
  /** anonymous rejections are written as one summary event per window (src/audit/rejection-summary.ts) */
  auditRejectionWindowMs: duration,
  /** per client address: failed authentications (API 401s, unknown proxy tokens) per window before 429 (src/limits/) */
  authFailureLimit: z.coerce.number().int().min(1),
  authFailureWindowMs: duration,
  /** peers (the load balancer) whose X-Forwarded-For names the client those per-address limits count against */
  trustedProxies: addressList,
  /** per identity: failed ticket redemptions per window before 429 */
  ticketFailureLimit: z.coerce.number().int().min(1),
  ticketFailureWindowMs: duration,
  /** a pending lease older than this is an orphan (its issue died with its broker) and is revoked by any broker (src/leases/reconcile.ts) */
  leasePendingGraceMs: duration,
  /** a replica that has not confirmed it is current for this long refuses authenticated requests (src/changes/) */
  replicaMaxStalenessMs: duration,
  /** longest delegation chain from a delegator's own authority (src/delegations/) */
  delegationMaxDepth: z.coerce.number().int().min(1).max(16),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  adminKeyUri: z.string().optional(),
  /** agent commands' default --key: TESSERA_KEY, else the key `tessera enroll` remembered in tessera.json */
  identityKeyUri: z.string().optional(),
});

export type Config = z.output<typeof schema>;

/** Setting name as the user writes it in the environment, for error messages. */
const ENV_NAMES: Record<string, string> = {
  dataDir: 'TESSERA_DATA_DIR',
  databaseUrl: 'TESSERA_DATABASE_URL',
  listen: 'TESSERA_LISTEN (--listen)',
  publicUrl: 'TESSERA_PUBLIC_URL',
  proxyListen: 'TESSERA_PROXY_LISTEN',
  proxyPublicUrl: 'TESSERA_PROXY_PUBLIC_URL',
  keystore: 'TESSERA_KEYSTORE (--keystore)',
  'pkcs11.module': 'TESSERA_PKCS11_MODULE',
  'pkcs11.token': 'TESSERA_PKCS11_TOKEN',
  'pkcs11.pin': 'TESSERA_PKCS11_PIN',
  'pkcs11.pinFile': 'TESSERA_PKCS11_PIN_FILE',
  ticketTtlMs: 'TESSERA_TICKET_TTL',
  ticketMaxTtlMs: 'TESSERA_TICKET_MAX_TTL',
  credentialTtlMs: 'TESSERA_CREDENTIAL_TTL',
  sessionMaxLifetimeMs: 'TESSERA_SESSION_MAX_LIFETIME',
  auditCheckpointEvery: 'TESSERA_AUDIT_CHECKPOINT_EVERY',
  auditCheckpointIntervalMs: 'TESSERA_AUDIT_CHECKPOINT_INTERVAL',
  'limits.headersTimeoutMs': 'TESSERA_HEADERS_TIMEOUT',
  'limits.bodyTimeoutMs': 'TESSERA_BODY_TIMEOUT',
  'limits.keepAliveTimeoutMs': 'TESSERA_KEEP_ALIVE_TIMEOUT',
  'limits.maxConnections': 'TESSERA_MAX_CONNECTIONS',
  'limits.maxConnectionsPerAddress': 'TESSERA_MAX_CONNECTIONS_PER_ADDRESS',
  auditRejectionWindowMs: 'TESSERA_AUDIT_REJECTION_WINDOW',
  authFailureLimit: 'TESSERA_AUTH_FAILURE_LIMIT',
  authFailureWindowMs: 'TESSERA_AUTH_FAILURE_WINDOW',
  trustedProxies: 'TESSERA_TRUSTED_PROXIES',
  ticketFailureLimit: 'TESSERA_TICKET_FAILURE_LIMIT',
  ticketFailureWindowMs: 'TESSERA_TICKET_FAILURE_WINDOW',
  leasePendingGraceMs: 'TESSERA_LEASE_PENDING_GRACE',
  replicaMaxStalenessMs: 'TESSERA_REPLICA_MAX_STALENESS',
  delegationMaxDepth: 'TESSERA_DELEGATION_MAX_DEPTH',
  logLevel: 'TESSERA_LOG_LEVEL',
  adminKeyUri: 'TESSERA_ADMIN_KEY',
  identityKeyUri: 'TESSERA_KEY',
};

/**
 * What `tessera init` (and `tessera enroll`) record in <data dir>/tessera.json: where things are,
 * never secrets.
 */
export interface InitState {
  keystore?: KeyStoreKind;
  pkcs11?: { module?: string; token?: string; pinFile?: string };
  adminKeyUri?: string;
  /** the identity key last enrolled from this data dir: agent commands' default --key */
  identityKeyUri?: string;
}

const STATE_FILE = 'tessera.json';

export function readInitState(dataDir: string): InitState {
  const path = join(dataDir, STATE_FILE);
  if (!existsSync(path)) return {};
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as InitState;
  } catch (error) {
    throw new TesseraError('config_invalid', `${path} is not valid JSON; fix or delete it.`, { cause: error });
  }
}

/** Writes <data dir>/tessera.json (0600; the data dir must exist). */
export function writeInitState(dataDir: string, state: InitState): void {
  const path = join(dataDir, STATE_FILE);
  writeFileSync(path, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  // The mode only applies to a file writeFileSync creates; tighten one that already existed.
  chmodSync(path, 0o600);
}

/**
 * The data dir when neither --data-dir nor TESSERA_DATA_DIR names one: the user's data dir of the
 * XDG base directory spec, the same from any working directory.
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  // Relative XDG paths are invalid and ignored, as the spec says.
  const base = env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'tessera');
}

export interface ConfigOverrides {
  dataDir?: string;
  listen?: string;
  proxyListen?: string;
  keystore?: string;
}

/** The proxy's default address: the API's host, next port up (8700 -> 8701). */
function nextPort(listen: string): string {
  const separator = listen.lastIndexOf(':');
  const port = Number(listen.slice(separator + 1));
  return Number.isInteger(port) && port > 0 && port < 65535 ? `${listen.slice(0, separator)}:${port + 1}` : listen;
}

export function loadConfig(overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = resolve(overrides.dataDir ?? env.TESSERA_DATA_DIR ?? defaultDataDir(env));
  const state = readInitState(dataDir);
  const listen = overrides.listen ?? env.TESSERA_LISTEN ?? '127.0.0.1:8700';
  const proxyListen = overrides.proxyListen ?? env.TESSERA_PROXY_LISTEN ?? nextPort(listen);
  const raw = {
    dataDir,
    databaseUrl: env.TESSERA_DATABASE_URL ?? `sqlite:${join(dataDir, 'tessera.db')}`,
    listen,
    publicUrl: env.TESSERA_PUBLIC_URL ?? `http://${listen}`,
    proxyListen,
    proxyPublicUrl: env.TESSERA_PROXY_PUBLIC_URL ?? `http://${proxyListen}`,
    keystore: overrides.keystore ?? env.TESSERA_KEYSTORE ?? state.keystore ?? 'pkcs11',
    pkcs11: {
      module: env.TESSERA_PKCS11_MODULE ?? state.pkcs11?.module,
      token: env.TESSERA_PKCS11_TOKEN ?? state.pkcs11?.token ?? 'tessera',
      pin: env.TESSERA_PKCS11_PIN,
      pinFile: env.TESSERA_PKCS11_PIN_FILE ?? state.pkcs11?.pinFile,
    },
    ticketTtlMs: env.TESSERA_TICKET_TTL ?? '10m',
    ticketMaxTtlMs: env.TESSERA_TICKET_MAX_TTL ?? '24h',
    credentialTtlMs: env.TESSERA_CREDENTIAL_TTL ?? '24h',
    sessionMaxLifetimeMs: env.TESSERA_SESSION_MAX_LIFETIME ?? '15m',
    auditCheckpointEvery: env.TESSERA_AUDIT_CHECKPOINT_EVERY ?? '1000',
    auditCheckpointIntervalMs: env.TESSERA_AUDIT_CHECKPOINT_INTERVAL ?? '60s',
    limits: {
      headersTimeoutMs: env.TESSERA_HEADERS_TIMEOUT ?? '10s',
      bodyTimeoutMs: env.TESSERA_BODY_TIMEOUT ?? '30s',
      keepAliveTimeoutMs: env.TESSERA_KEEP_ALIVE_TIMEOUT ?? '5s',
      maxConnections: env.TESSERA_MAX_CONNECTIONS ?? '1024',
      maxConnectionsPerAddress: env.TESSERA_MAX_CONNECTIONS_PER_ADDRESS ?? '64',
    },
    auditRejectionWindowMs: env.TESSERA_AUDIT_REJECTION_WINDOW ?? '10s',
    authFailureLimit: env.TESSERA_AUTH_FAILURE_LIMIT ?? '100',
    authFailureWindowMs: env.TESSERA_AUTH_FAILURE_WINDOW ?? '10s',
    trustedProxies: env.TESSERA_TRUSTED_PROXIES ?? '',
    ticketFailureLimit: env.TESSERA_TICKET_FAILURE_LIMIT ?? '10',
    ticketFailureWindowMs: env.TESSERA_TICKET_FAILURE_WINDOW ?? '10m',
    leasePendingGraceMs: env.TESSERA_LEASE_PENDING_GRACE ?? '60s',
    replicaMaxStalenessMs: env.TESSERA_REPLICA_MAX_STALENESS ?? '2s',
    delegationMaxDepth: env.TESSERA_DELEGATION_MAX_DEPTH ?? '3',
    logLevel: env.TESSERA_LOG_LEVEL ?? 'info',
    adminKeyUri: env.TESSERA_ADMIN_KEY ?? state.adminKeyUri,
    // An empty TESSERA_KEY (`TESSERA_KEY= tessera ...`) counts as unset.
    identityKeyUri: env.TESSERA_KEY || state.identityKeyUri,
  };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.join('.');
    throw new TesseraError('config_invalid', `Invalid setting ${ENV_NAMES[path] ?? path}: ${issue.message}`);
  }
  requireReachable('TESSERA_PUBLIC_URL', parsed.data.publicUrl, env.TESSERA_PUBLIC_URL === undefined ? `TESSERA_LISTEN (--listen) ${listen}` : undefined);
  requireReachable('TESSERA_PROXY_PUBLIC_URL', parsed.data.proxyPublicUrl, env.TESSERA_PROXY_PUBLIC_URL === undefined ? `TESSERA_PROXY_LISTEN (--proxy-listen) ${proxyListen}` : undefined);
  if (parsed.data.ticketTtlMs > parsed.data.ticketMaxTtlMs) {
    throw new TesseraError('config_invalid', 'Invalid setting TESSERA_TICKET_TTL: must not exceed TESSERA_TICKET_MAX_TTL');
  }
  // The body timeout counts from the request's first byte, so it covers the headers too.
  if (parsed.data.limits.headersTimeoutMs > parsed.data.limits.bodyTimeoutMs) {
    throw new TesseraError('config_invalid', 'Invalid setting TESSERA_HEADERS_TIMEOUT: must not exceed TESSERA_BODY_TIMEOUT');
  }
  return parsed.data;
}

/** Wildcard bind addresses as the URL parser writes them (0, 0x0, [0::0], ... included). */
const UNSPECIFIED_HOSTS = new Set(['0.0.0.0', '[::]', '[::ffff:0:0]']);

/**
 * A public URL is handed out (proofs' `aud`, agents' `base_url`), so it must name a host a client
 * can reach: a wildcard bind address never is. `derivedFrom` names the listen setting it defaulted from.
 */
function requireReachable(setting: string, url: string, derivedFrom: string | undefined): void {
  if (!UNSPECIFIED_HOSTS.has(new URL(url).hostname)) return;
  const reason = derivedFrom
    ? `it defaults to ${url} from ${derivedFrom}, which listens on every interface but is no address a client can reach`
    : `${url} names every interface, not an address a client can reach`;
  throw new TesseraError('config_invalid', `Invalid setting ${setting}: ${reason}; set ${setting} to the URL clients use (e.g. https://tessera.example.com)`);
}

/** `host:port` or `[v6]:port` (validated by the schema) as listen() options. */
export function parseHostPort(address: string): { host: string; port: number } {
  const separator = address.lastIndexOf(':');
  return { host: address.slice(0, separator).replace(/^\[|\]$/g, ''), port: Number(address.slice(separator + 1)) };
}
