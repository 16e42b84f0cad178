/**
 * `tessera run`: lease, start the command with the credentials in its environment, keep the leases
 * renewed while it runs, and revoke them all when it ends. Built on the SDK's public API only.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { type AutoRenewEnd, type AutoRenewTimers, BrokerRequestError, type Lease, systemTimers, type TesseraClient } from '@tessera-broker/sdk';
import { TesseraError } from '../../errors.js';
import { leaseEnvironment } from './environment.js';
import { checkDistinct, type LeaseSpec } from './lease-spec.js';

/** Signals to tessera that go on to the command's process group. */
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const satisfies readonly NodeJS.Signals[];
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

export type OnLeaseLost = 'term' | 'ignore';
export const ON_LEASE_LOST: readonly OnLeaseLost[] = ['term', 'ignore'];

/** Where forwarded signals arrive: the process, or a test's emitter. */
export interface SignalSource {
  on(signal: ForwardedSignal, listener: () => void): unknown;
  off(signal: ForwardedSignal, listener: () => void): unknown;
}

export interface RunOptions {
  readonly leases: readonly LeaseSpec[];
  readonly command: string;
  readonly args: readonly string[];
  /** Start the command with only the lease variables and PATH. */
  readonly cleanEnv: boolean;
  readonly onLeaseLost: OnLeaseLost;
  /** What the command inherits unless cleanEnv; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Renewals and expiries; default real (unref'd) timers. */
  readonly timers?: AutoRenewTimers;
  /** Default: process. */
  readonly signals?: SignalSource;
  /** One line for the user; default: stderr. */
  readonly report?: (line: string) => void;
}

/** Shells' conventions for a command that cannot be run. */
const EXIT_NOT_FOUND = 127;
const EXIT_NOT_EXECUTABLE = 126;
/** setTimeout's longest delay; longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The broker no longer has the lease live: nothing left to revoke. */
const alreadyGone = (error: unknown) => error instanceof BrokerRequestError && (error.code === 'lease_inactive' || error.code === 'not_found');

/** 128 + the signal's number, as shells report a command killed by a signal. */
function exitStatusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

/**
 * Leases every spec, runs the command with the credentials in its environment until it exits, and
 * revokes every lease it made. Resolves with the command's exit status (128+n when killed by
 * signal n). A signal arriving before the command started ends the run without starting it.
 */
export async function runWithLeases(client: TesseraClient, options: RunOptions): Promise<number> {
  const report = options.report ?? ((line: string) => process.stderr.write(`tessera: ${line}\n`));
  const timers = options.timers ?? systemTimers;
  const signals = options.signals ?? process;
  checkDistinct(options.leases);

  let child: { pid: number } | undefined;
  let early: ForwardedSignal | undefined;
  const forward = (signal: ForwardedSignal) => {
    if (!child) return void (early ??= signal);
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone: the command is exiting anyway
    }
  };
  const listeners = FORWARDED_SIGNALS.map((signal) => [signal, () => forward(signal)] as const);
  for (const [signal, listener] of listeners) signals.on(signal, listener);
  try {
    const leases = await leaseAll(client, options.leases, report);
    const revokeAll = () => revoke(client, leases, report);
    let environment: Record<string, string>;
    try {
      environment = commandEnvironment(options, leases);
    } catch (error) {
      await revokeAll();
      throw error;
    }
    if (early) {
      await revokeAll();
      return exitStatusOf(null, early);
    }

    const started = await start(options.command, options.args, environment);
    if ('error' in started) {
      await revokeAll();
      report(`cannot run ${options.command}: ${started.error.message}`);
      return started.error.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE;
    }
    child = started;

    let exited = false;
    const renewals = keepRenewed(client, leases, { timers, report }, (lease, why) => {
      if (exited) return;
      const action = options.onLeaseLost === 'term' ? 'sending SIGTERM to the command' : 'the command keeps running (--on-lease-lost ignore)';
      report(`${label(lease)} is lost: ${why}; ${action}`);
      if (options.onLeaseLost === 'term') forward('SIGTERM');
    });

    const status = await started.exit;
    exited = true;
    await renewals.stop();
    await revokeAll();
    return status;
  } finally {
    for (const [signal, listener] of listeners) signals.off(signal, listener);
  }
}

const label = (lease: Lease) => `lease ${lease.id} (${lease.backend}:${lease.role})`;
/** `code: message` for broker and SDK errors (matched by shape: the SDK may be another package's copy). */
function describe(error: Error): string {
  const { code } = error as { code?: unknown };
  return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
}

/**
 * Renews every lease two thirds into each TTL until stop(). `lost` is called once per lease that
 * can no longer be renewed: at once when renewing fails for good, at its expiry when its grant's
 * max TTL is reached (the credential works until then).
 */
function keepRenewed(
  client: TesseraClient,
  leases: readonly Lease[],
  { timers, report }: { timers: AutoRenewTimers; report: (line: string) => void },
  lost: (lease: Lease, why: string) => void,
): { stop(): Promise<void> } {
  const expiryTimers = new Set<unknown>();
  const lostAtExpiry = (lease: Lease, expiresAt: Date) => {
    const handle = timers.setTimeout(() => {
      expiryTimers.delete(handle);
      if (timers.now() < expiresAt.getTime()) lostAtExpiry(lease, expiresAt); // a wait longer than one timer
      else lost(lease, `it expired at ${expiresAt.toISOString()}`);
    }, Math.min(MAX_TIMER_MS, expiresAt.getTime() - timers.now()));
    expiryTimers.add(handle);
  };
  const ended = (lease: Lease, end: AutoRenewEnd) => {
    if (end.reason === 'failed') lost(lease, `it could not be renewed: ${describe(end.error)}`);
    if (end.reason !== 'not_renewable') return;
    report(`${label(lease)} cannot be renewed past ${end.expiresAt.toISOString()} (its grant's max TTL)`);
    lostAtExpiry(lease, end.expiresAt);
  };
  const renewers = leases.map((lease) =>
    client.autoRenew(lease, {
      renewBefore: 1 / 3, // renew two thirds into each TTL
      timers,
      onError: (error) => report(`renewing ${label(lease)} failed: ${describe(error)}`),
      onStop: (end) => ended(lease, end),
    }),
  );
  return {
    async stop() {
      await Promise.all(renewers.map((renewer) => renewer.stop()));
      for (const handle of expiryTimers) timers.clearTimeout(handle);
    },
  };
}

/** All leases or none: if one is refused, the others are revoked before the error is thrown. */
async function leaseAll(client: TesseraClient, specs: readonly LeaseSpec[], report: (line: string) => void): Promise<Lease[]> {
  const results = await Promise.allSettled(
    specs.map((spec) => client.lease(spec.backend, { role: spec.role, ...(spec.ttlSeconds !== undefined && { ttl: spec.ttlSeconds }) })),
  );
  const leases = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const refused = results.find((result) => result.status === 'rejected');
  if (!refused) return leases;
  await revoke(client, leases, report);
  throw refused.reason;
}

/** The command's environment; two leases setting one variable are refused. */
function commandEnvironment(options: RunOptions, leases: readonly Lease[]): Record<string, string> {
  const base = options.env ?? process.env;
  const environment: Record<string, string> = {};
  if (options.cleanEnv) {
    if (base.PATH !== undefined) environment.PATH = base.PATH;
  } else {
    for (const [variable, value] of Object.entries(base)) if (value !== undefined) environment[variable] = value;
  }
  // The PIN unlocks the token tessera signs with: the command gets its leases, not the key.
  delete environment.TESSERA_PKCS11_PIN;
  const setBy = new Map<string, LeaseSpec>();
  options.leases.forEach((spec, index) => {
    for (const [variable, value] of Object.entries(leaseEnvironment(leases[index]!, spec.name))) {
      const earlier = setBy.get(variable);
      if (earlier) throw new TesseraError('invalid_request', `--lease ${earlier.text} and --lease ${spec.text} both set ${variable}; give each its own name: --lease NAME=${spec.backend}:${spec.role}.`);
      setBy.set(variable, spec);
      environment[variable] = value;
    }
  });
  return environment;
}

/**
 * Starts the command as the leader of a new process group (so signals reach everything it starts),
 * with tessera's stdin, stdout and stderr. The group is a new session (what Node's `detached`
 * does), so the command has no controlling terminal: Ctrl-C reaches it through tessera. Resolves
 * once it runs, or with why it could not start.
 */
function start(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ pid: number; exit: Promise<number> } | { error: NodeJS.ErrnoException }> {
  const child = spawn(command, args, { stdio: 'inherit', env, detached: true });
  const exit = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(exitStatusOf(code, signal))));
  return new Promise((resolve) => {
    child.once('spawn', () => resolve({ pid: child.pid!, exit }));
    child.once('error', (error) => resolve({ error }));
  });
}

/** Revokes every lease at once; what cannot be revoked is reported (the broker retries pending ones). */
async function revoke(client: TesseraClient, leases: readonly Lease[], report: (line: string) => void): Promise<void> {
  await Promise.all(
    leases.map(async (lease) => {
      try {
        const { state } = await client.revoke(lease.id);
        if (state === 'revocation-pending') report(`${label(lease)} is revocation-pending: the broker keeps retrying`);
      } catch (error) {
        if (!alreadyGone(error)) report(`could not revoke ${label(lease)}: ${describe(error as Error)}; it expires at ${lease.expiresAt.toISOString()}`);
      }
    }),
  );
}
