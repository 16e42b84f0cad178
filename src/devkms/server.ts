/**
 * A local stand-in for AWS KMS, for development and tests only. It speaks KMS's JSON 1.1 wire
 * protocol (POST /, `X-Amz-Target: TrentService.<Op>`) so the unmodified AWS SDK talks to it
 * exactly as it talks to AWS; point the SDK at it with AWS_ENDPOINT_URL_KMS.
 *
 * DEV ONLY: the "inside KMS" boundary is this process. Private keys live in its memory and, with
 * `stateFile`, in plain JSON on disk (mode 0600). Signatures are not verified: any SigV4-shaped
 * Authorization header scoped to this region is accepted.
 *
 * Realism (realism.ts), off by default: `signLatencyMs` delays Sign and Verify answers, and
 * `asymmetricQuota` is a token bucket shared by all Sign and Verify calls that answers
 * ThrottlingException past its rate, as AWS KMS does.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign as edSign,
  verify as edVerify,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { systemTimers, type Timers } from '../clock.js';
import { ASYMMETRIC_OPERATIONS, delay, type RequestQuota, TokenBucket } from './realism.js';

export interface DevKmsOptions {
  /** Interface to bind; default 127.0.0.1 (there is no real authentication). */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  region?: string;
  accountId?: string;
  /** JSON file holding the keys (private keys included) across restarts. */
  stateFile?: string;
  /** Token bucket over all operations; excess requests get ThrottlingException. */
  throttle?: RequestQuota;
  /**
   * Milliseconds each Sign and Verify answer is held back, like the network and HSM time of a real
   * KMS call (~25 ms from inside the region). GetPublicKey and key management answer at once:
   * agents and the broker call them once per key, not per request.
   */
  signLatencyMs?: number;
  /**
   * Token bucket shared by every Sign and Verify call, like AWS's account-wide "Cryptographic
   * operations (ECC) request rate" quota (default 300/s). Refused calls get ThrottlingException
   * (HTTP 400) at once, before any latency. GetPublicKey has its own quota at AWS and is not counted.
   */
  asymmetricQuota?: RequestQuota;
  /** Time for the quotas and timers for the latency; tests inject ManualTimers. Default: real time. */
  timers?: Timers;
}

/** Requests the endpoint received for one operation, and how many of them it throttled. */
export interface OperationCount {
  readonly requests: number;
  readonly throttled: number;
}

export interface DevKms {
  readonly url: string;
  readonly region: string;
  /** Requests so far per operation (e.g. `Sign`), counted on arrival: how many KMS calls a workload makes. */
  counts(): Readonly<Record<string, OperationCount>>;
  close(): Promise<void>;
}

export async function startDevKms(options: DevKmsOptions = {}): Promise<DevKms> {
  const host = options.host ?? '127.0.0.1';
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '000000000000';
  if (!/^\d{12}$/.test(accountId)) throw new Error('accountId must be 12 digits');
  const kms = new DevKmsService(region, accountId, options.stateFile);
  const timers = options.timers ?? systemTimers;
  const signLatencyMs = options.signLatencyMs ?? 0;
  if (!(signLatencyMs >= 0) || !Number.isFinite(signLatencyMs)) throw new Error('signLatencyMs must be a non-negative number');
  const realism: Realism = {
    timers,
    signLatencyMs,
    allRequests: options.throttle && new TokenBucket(options.throttle, timers),
    asymmetric: options.asymmetricQuota && new TokenBucket(options.asymmetricQuota, timers),
    counts: new Map(),
  };

  const server = createServer((request, response) => {
    handle(request, response, kms, region, realism).catch(() => response.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${urlHost(host)}:${port}`,
    region,
    counts: () => Object.fromEntries(realism.counts),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // The SDK keeps sockets alive; close() alone would wait for them to time out.
        server.closeAllConnections();
      }),
  };
}

/** Wildcard binds are reachable on loopback; IPv6 literals need brackets in a URL. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** An error KMS reports as `{"__type": type, "message": ...}` with HTTP 400. */
class KmsFault extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY_BYTES = 1 << 20;

interface Realism {
  readonly timers: Timers;
  readonly signLatencyMs: number;
  readonly allRequests: TokenBucket | undefined;
  readonly asymmetric: TokenBucket | undefined;
  readonly counts: Map<string, OperationCount>;
}

/** AWS KMS's words when it throttles (HTTP 400, error code ThrottlingException). */
const THROTTLED_MESSAGE = 'You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.';

/** Takes a token from each bucket that applies; counts the request and whether it was throttled. */
function admit(operation: string, realism: Realism): void {
  const asymmetric = ASYMMETRIC_OPERATIONS.has(operation);
  const admitted = (realism.allRequests?.take() ?? true) && (!asymmetric || (realism.asymmetric?.take() ?? true));
  const count = realism.counts.get(operation) ?? { requests: 0, throttled: 0 };
  realism.counts.set(operation, { requests: count.requests + 1, throttled: count.throttled + (admitted ? 0 : 1) });
  if (!admitted) throw new KmsFault('ThrottlingException', THROTTLED_MESSAGE);
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  kms: DevKmsService,
  region: string,
  realism: Realism,
): Promise<void> {
  const body = await readBody(request);
  const requestId = randomUUID();
  const reply = (status: number, payload: object, headers: Record<string, string> = {}) => {
    response.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': requestId, ...headers });
    response.end(JSON.stringify(payload));
  };
  try {
    checkAuthorization(request.headers.authorization, region);
    const target = request.headers['x-amz-target'];
    const operation = typeof target === 'string' && target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : '';
    if (request.method !== 'POST' || !operation) throw new KmsFault('UnknownOperationException', 'Expected POST / with X-Amz-Target: TrentService.<Operation>');
    admit(operation, realism);
    if (body === undefined) throw new KmsFault('ValidationException', `Request body exceeds ${MAX_BODY_BYTES} bytes`);
    const input = parseJson(body);
    if (ASYMMETRIC_OPERATIONS.has(operation)) await delay(realism.timers, realism.signLatencyMs);
    reply(200, kms.invoke(operation, input));
  } catch (error) {
    const fault = error instanceof KmsFault ? error : new KmsFault('KMSInternalException', 'Internal error');
    reply(fault.type === 'KMSInternalException' ? 500 : 400, { __type: fault.type, message: fault.message }, { 'x-amzn-errortype': fault.type });
  }
}

/** The whole body, or undefined when it is larger than MAX_BODY_BYTES. */
async function readBody(request: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  return size <= MAX_BODY_BYTES ? Buffer.concat(chunks).toString('utf8') : undefined;
}

function parseJson(body: string): unknown {
  try {
    return body === '' ? {} : JSON.parse(body);
  } catch {
    throw new KmsFault('SerializationException', 'Request body is not valid JSON');
  }
}

/** Requires a SigV4 header scoped to this region and to kms, like KMS; the signature itself is not checked. */
function checkAuthorization(header: string | undefined, region: string): void {
  if (!header) throw new KmsFault('MissingAuthenticationTokenException', 'Request is missing Authentication Token');
  const scope = /^AWS4-HMAC-SHA256 Credential=[^/,\s]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(header);
  if (!scope) throw new KmsFault('IncompleteSignatureException', 'Authorization header is not a SigV4 signature');
  if (scope[1] !== region) throw new KmsFault('InvalidSignatureException', `Credential should be scoped to a valid region: '${region}'.`);
  if (scope[2] !== 'kms') throw new KmsFault('InvalidSignatureException', "Credential should be scoped to correct service: 'kms'.");
}

// ---- Key model -------------------------------------------------------------------------------

const KEY_SPECS = {
  ECC_NIST_EDWARDS25519: { usage: 'SIGN_VERIFY', signing: ['ED25519_SHA_512'], encryption: [] },
  SYMMETRIC_DEFAULT: { usage: 'ENCRYPT_DECRYPT', signing: [], encryption: ['SYMMETRIC_DEFAULT'] },
} as const;
type KeySpec = keyof typeof KEY_SPECS;
type KeyUsage = (typeof KEY_SPECS)[KeySpec]['usage'];

const blob = z.base64().transform((value) => Buffer.from(value, 'base64'));
const TagList = z.array(z.object({ TagKey: z.string().min(1).max(128), TagValue: z.string().max(256) }));

/** Key metadata in KMS's field names; this is also the state file's record shape, plus Material. */
const KeyRecord = z.object({
  KeyId: z.uuid(),
  Description: z.string(),
  KeySpec: z.enum(['ECC_NIST_EDWARDS25519', 'SYMMETRIC_DEFAULT']),
  KeyState: z.enum(['Enabled', 'Disabled', 'PendingDeletion']),
  CreationDate: z.number(),
  DeletionDate: z.number().optional(),
  Tags: TagList,
});
type KeyRecord = z.infer<typeof KeyRecord>;
const StateFile = z.object({ version: z.literal(1), keys: z.array(KeyRecord.extend({ Material: z.base64() })) });

interface DevKey extends KeyRecord {
  /** Ed25519 private key or AES-256 secret key. */
  readonly material: KeyObject;
}

function generateMaterial(spec: KeySpec): KeyObject {
  return spec === 'SYMMETRIC_DEFAULT' ? createSecretKey(randomBytes(32)) : generateKeyPairSync('ed25519').privateKey;
}

function exportMaterial(spec: KeySpec, material: KeyObject): Buffer {
  return spec === 'SYMMETRIC_DEFAULT' ? material.export() : material.export({ format: 'der', type: 'pkcs8' });
}

function importMaterial(spec: KeySpec, der: Buffer): KeyObject {
  return spec === 'SYMMETRIC_DEFAULT' ? createSecretKey(der) : createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

// ---- Operations ------------------------------------------------------------------------------

const KeyIdInput = z.object({ KeyId: z.string().min(1).max(2048) });
const EncryptionContext = z.record(z.string(), z.string()).optional();

const Inputs = {
  CreateKey: z.object({
    KeySpec: z.string().default('SYMMETRIC_DEFAULT'),
    KeyUsage: z.string().default('ENCRYPT_DECRYPT'),
    Description: z.string().max(8192).default(''),
    Tags: TagList.default([]),
  }),
  Sign: KeyIdInput.extend({
    Message: blob.refine((m) => m.length >= 1 && m.length <= 4096, 'Message must be 1 to 4096 bytes'),
    MessageType: z.enum(['RAW', 'DIGEST', 'EXTERNAL_MU']).default('RAW'),
    SigningAlgorithm: z.string(),
  }),
  Encrypt: KeyIdInput.extend({
    Plaintext: blob.refine((p) => p.length >= 1 && p.length <= 4096, 'Plaintext must be 1 to 4096 bytes'),
    EncryptionContext,
    EncryptionAlgorithm: z.string().default('SYMMETRIC_DEFAULT'),
  }),
  Decrypt: z.object({
    KeyId: z.string().min(1).optional(),
    CiphertextBlob: blob,
    EncryptionContext,
    EncryptionAlgorithm: z.string().default('SYMMETRIC_DEFAULT'),
  }),
  ScheduleKeyDeletion: KeyIdInput.extend({ PendingWindowInDays: z.number().int().min(7).max(30).default(30) }),
  ListKeys: z.object({ Limit: z.number().int().min(1).max(1000).default(100), Marker: z.string().optional() }),
};

function parse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.map((issue) => `'${issue.path.join('.')}': ${issue.message}`).join('; ');
  throw new KmsFault('ValidationException', `${result.error.issues.length} validation error(s) detected: ${details}`);
}

// Ciphertext blob: version, key id (so Decrypt finds the key, as in KMS), then AES-256-GCM iv, tag, data.
const BLOB_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

class DevKmsService {
  private readonly keys = new Map<string, DevKey>();
  private readonly operations: Record<string, (input: unknown) => object> = {
    CreateKey: (input) => this.createKey(input),
    DescribeKey: (input) => ({ KeyMetadata: this.metadata(this.find(input)) }),
    GetPublicKey: (input) => this.getPublicKey(input),
    Sign: (input) => this.sign(input),
    Verify: (input) => this.verify(input),
    Encrypt: (input) => this.encrypt(input),
    Decrypt: (input) => this.decrypt(input),
    EnableKey: (input) => this.setEnabled(input, true),
    DisableKey: (input) => this.setEnabled(input, false),
    ScheduleKeyDeletion: (input) => this.scheduleKeyDeletion(input),
    ListKeys: (input) => this.listKeys(input),
    ListResourceTags: (input) => ({ Tags: this.find(input).Tags, Truncated: false }),
  };

  constructor(
    private readonly region: string,
    private readonly accountId: string,
    private readonly stateFile: string | undefined,
  ) {
    if (stateFile && existsSync(stateFile)) this.load(stateFile);
  }

  invoke(operation: string, input: unknown): object {
    const run = this.operations[operation];
    if (!run) throw new KmsFault('UnknownOperationException', `Operation ${operation} is not supported by the dev KMS`);
    return run(input);
  }

  private createKey(input: unknown): object {
    const { KeySpec, KeyUsage, Description, Tags } = parse(Inputs.CreateKey, input);
    if (!(KeySpec in KEY_SPECS)) throw new KmsFault('ValidationException', `KeySpec ${KeySpec} is not supported by the dev KMS`);
    const spec = KeySpec as KeySpec;
    if (KEY_SPECS[spec].usage !== KeyUsage) throw new KmsFault('ValidationException', `KeyUsage ${KeyUsage} is not valid for KeySpec ${spec}`);
    const key: DevKey = {
      KeyId: randomUUID(),
      Description,
      KeySpec: spec,
      KeyState: 'Enabled',
      CreationDate: Date.now() / 1000,
      Tags,
      material: generateMaterial(spec),
    };
    this.keys.set(key.KeyId, key);
    this.save();
    return { KeyMetadata: this.metadata(key) };
  }

  private getPublicKey(input: unknown): object {
    const key = this.usable(this.find(input));
    if (key.KeySpec !== 'ECC_NIST_EDWARDS25519') throw new KmsFault('UnsupportedOperationException', `${this.arn(key)} is not an asymmetric key`);
    return {
      KeyId: this.arn(key),
      PublicKey: createPublicKey(key.material).export({ format: 'der', type: 'spki' }).toString('base64'),
      KeySpec: key.KeySpec,
      CustomerMasterKeySpec: key.KeySpec,
      KeyUsage: KEY_SPECS[key.KeySpec].usage,
      SigningAlgorithms: KEY_SPECS[key.KeySpec].signing,
    };
  }

  private sign(input: unknown): object {
    const { key, message } = this.signingRequest(input);
    return { KeyId: this.arn(key), Signature: edSign(null, message, key.material).toString('base64'), SigningAlgorithm: 'ED25519_SHA_512' };
  }

  private verify(input: unknown): object {
    const { key, message } = this.signingRequest(input);
    const { Signature } = parse(z.object({ Signature: blob }), input);
    if (!edVerify(null, message, createPublicKey(key.material), Signature)) {
      throw new KmsFault('KMSInvalidSignatureException', 'The signature is not valid for this message and key');
    }
    return { KeyId: this.arn(key), SignatureValid: true, SigningAlgorithm: 'ED25519_SHA_512' };
  }

  /** Shared Sign/Verify checks: only pure Ed25519 over a RAW message is implemented. */
  private signingRequest(input: unknown): { key: DevKey; message: Buffer } {
    const { Message, MessageType, SigningAlgorithm } = parse(Inputs.Sign, input);
    const key = this.usable(this.find(input), 'SIGN_VERIFY');
    if (SigningAlgorithm !== 'ED25519_SHA_512') {
      throw new KmsFault('ValidationException', `SigningAlgorithm ${SigningAlgorithm} is not supported for ${this.arn(key)}`);
    }
    if (MessageType !== 'RAW') throw new KmsFault('ValidationException', 'ED25519_SHA_512 requires MessageType RAW');
    return { key, message: Message };
  }

  private encrypt(input: unknown): object {
    const { Plaintext, EncryptionContext, EncryptionAlgorithm } = parse(Inputs.Encrypt, input);
    const key = this.usable(this.find(input), 'ENCRYPT_DECRYPT');
    checkEncryptionAlgorithm(EncryptionAlgorithm);
    const header = blobHeader(key.KeyId);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.material, iv).setAAD(aad(header, EncryptionContext));
    const data = Buffer.concat([cipher.update(Plaintext), cipher.final()]);
    const ciphertext = Buffer.concat([header, iv, cipher.getAuthTag(), data]);
    return { KeyId: this.arn(key), CiphertextBlob: ciphertext.toString('base64'), EncryptionAlgorithm };
  }

  private decrypt(input: unknown): object {
    const { KeyId, CiphertextBlob, EncryptionContext, EncryptionAlgorithm } = parse(Inputs.Decrypt, input);
    checkEncryptionAlgorithm(EncryptionAlgorithm);
    const requested = KeyId === undefined ? undefined : this.find({ KeyId });
    const invalid = () => new KmsFault('InvalidCiphertextException', 'The ciphertext is invalid or was not produced by this KMS');
    if (CiphertextBlob.length < 2 || CiphertextBlob[0] !== BLOB_VERSION) throw invalid();
    const headerEnd = 2 + CiphertextBlob[1]!;
    if (CiphertextBlob.length < headerEnd + IV_BYTES + TAG_BYTES) throw invalid();
    const keyId = CiphertextBlob.subarray(2, headerEnd).toString('utf8');
    if (requested && requested.KeyId !== keyId) throw new KmsFault('IncorrectKeyException', 'The ciphertext was encrypted under a different KMS key');
    const found = this.keys.get(keyId);
    if (!found) throw invalid();
    const key = this.usable(found, 'ENCRYPT_DECRYPT');
    const iv = CiphertextBlob.subarray(headerEnd, headerEnd + IV_BYTES);
    const tag = CiphertextBlob.subarray(headerEnd + IV_BYTES, headerEnd + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key.material, iv)
      .setAAD(aad(CiphertextBlob.subarray(0, headerEnd), EncryptionContext))
      .setAuthTag(tag);
    try {
      const plaintext = Buffer.concat([decipher.update(CiphertextBlob.subarray(headerEnd + IV_BYTES + TAG_BYTES)), decipher.final()]);
      return { KeyId: this.arn(key), Plaintext: plaintext.toString('base64'), EncryptionAlgorithm };
    } catch {
      throw invalid();
    }
  }

  private setEnabled(input: unknown, enabled: boolean): object {
    const key = this.find(input);
    this.rejectPendingDeletion(key);
    key.KeyState = enabled ? 'Enabled' : 'Disabled';
    this.save();
    return {};
  }

  private scheduleKeyDeletion(input: unknown): object {
    const { PendingWindowInDays } = parse(Inputs.ScheduleKeyDeletion, input);
    const key = this.find(input);
    this.rejectPendingDeletion(key);
    key.KeyState = 'PendingDeletion';
    key.DeletionDate = Date.now() / 1000 + PendingWindowInDays * 86_400;
    this.save();
    return { KeyId: this.arn(key), DeletionDate: key.DeletionDate, KeyState: key.KeyState, PendingWindowInDays };
  }

  private listKeys(input: unknown): object {
    const { Limit, Marker } = parse(Inputs.ListKeys, input);
    const start = Marker === undefined ? 0 : Number.parseInt(Marker, 10);
    if (!Number.isSafeInteger(start) || start < 0) throw new KmsFault('InvalidMarkerException', 'Marker is not valid');
    const page = [...this.keys.values()].slice(start, start + Limit);
    const next = start + page.length;
    const truncated = next < this.keys.size;
    return {
      Keys: page.map((key) => ({ KeyId: key.KeyId, KeyArn: this.arn(key) })),
      Truncated: truncated,
      ...(truncated ? { NextMarker: String(next) } : {}),
    };
  }

  /** Resolves the request's KeyId (key id or key ARN in this region and account). */
  private find(input: unknown): DevKey {
    const { KeyId } = parse(KeyIdInput, input);
    const arn = /^arn:aws:kms:([^:]*):(\d*):key\/(.+)$/.exec(KeyId);
    const id = arn ? (arn[1] === this.region && arn[2] === this.accountId ? arn[3] : undefined) : KeyId;
    const key = id === undefined ? undefined : this.keys.get(id);
    if (!key) throw new KmsFault('NotFoundException', `Key '${KeyId}' does not exist`);
    return key;
  }

  /** Cryptographic operations need an enabled key of the right usage. */
  private usable(key: DevKey, usage?: KeyUsage): DevKey {
    this.rejectPendingDeletion(key);
    if (key.KeyState === 'Disabled') throw new KmsFault('DisabledException', `${this.arn(key)} is disabled.`);
    const actual = KEY_SPECS[key.KeySpec].usage;
    if (usage && actual !== usage) {
      throw new KmsFault('InvalidKeyUsageException', `${this.arn(key)} key usage is ${actual} which is not valid for this operation.`);
    }
    return key;
  }

  private rejectPendingDeletion(key: DevKey): void {
    if (key.KeyState === 'PendingDeletion') throw new KmsFault('KMSInvalidStateException', `${this.arn(key)} is pending deletion.`);
  }

  private arn(key: DevKey): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:key/${key.KeyId}`;
  }

  private metadata(key: DevKey): object {
    const spec = KEY_SPECS[key.KeySpec];
    return {
      AWSAccountId: this.accountId,
      KeyId: key.KeyId,
      Arn: this.arn(key),
      CreationDate: key.CreationDate,
      Enabled: key.KeyState === 'Enabled',
      Description: key.Description,
      KeyUsage: spec.usage,
      KeyState: key.KeyState,
      ...(key.DeletionDate === undefined ? {} : { DeletionDate: key.DeletionDate }),
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: key.KeySpec,
      KeySpec: key.KeySpec,
      ...(spec.signing.length ? { SigningAlgorithms: spec.signing } : { EncryptionAlgorithms: spec.encryption }),
      MultiRegion: false,
    };
  }

  private load(file: string): void {
    let state;
    try {
      state = StateFile.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    } catch (error) {
      throw new Error(`Dev KMS state file ${file} is not readable JSON`, { cause: error });
    }
    if (!state.success) throw new Error(`Dev KMS state file ${file} is malformed: ${z.prettifyError(state.error)}`);
    for (const { Material, ...record } of state.data.keys) {
      this.keys.set(record.KeyId, { ...record, material: importMaterial(record.KeySpec, Buffer.from(Material, 'base64')) });
    }
  }

  /** Rewrites the whole state file atomically (write then rename); synchronous so writes never interleave. */
  private save(): void {
    if (!this.stateFile) return;
    const keys = [...this.keys.values()].map(({ material, ...record }) => ({
      ...record,
      Material: exportMaterial(record.KeySpec, material).toString('base64'),
    }));
    const temp = `${this.stateFile}.tmp`;
    rmSync(temp, { force: true });
    writeFileSync(temp, JSON.stringify({ version: 1, keys }, null, 2), { mode: 0o600 });
    renameSync(temp, this.stateFile);
  }
}

function checkEncryptionAlgorithm(algorithm: string): void {
  if (algorithm !== 'SYMMETRIC_DEFAULT') throw new KmsFault('ValidationException', `EncryptionAlgorithm ${algorithm} is not valid for a symmetric key`);
}

function blobHeader(keyId: string): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  return Buffer.concat([Buffer.from([BLOB_VERSION, id.length]), id]);
}

/** Binds the blob header and the encryption context (order-independent, as in KMS) to the ciphertext. */
function aad(header: Buffer, context: Record<string, string> | undefined): Buffer {
  const entries = Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.concat([header, Buffer.from(JSON.stringify(entries), 'utf8')]);
}
