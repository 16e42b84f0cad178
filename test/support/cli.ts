/**
 * Runs the real `tessera` CLI (the compiled dist/src/cli/main.js, as the package's `bin` does) in
 * child processes with a clean environment, and keeps track of the long-running ones (`serve`,
 * `dev kms`) so a test can always stop them.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onFreePorts } from './ports.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_ENTRY = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Compiles the SDK package, then src/ and provisioner/ to dist/ (`npm run build` without npm's start-up cost). */
export async function buildCli(timeoutMs = 600_000): Promise<void> {
  for (const project of ['packages/sdk/tsconfig.json', 'tsconfig.build.json']) await compile(project, timeoutMs);
}

function compile(project: string, timeoutMs: number): Promise<void> {
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [tsc, '-p', project], { cwd: REPO_ROOT, timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`build failed (tsc -p ${project}):\n${stdout}${stderr}`, { cause: error }));
      else resolve();
    });
  });
}

/**
 * Where a CLI run that names no data dir (no --data-dir, no TESSERA_DATA_DIR) would look: a path
 * under a character device, which no one can create, so that such a run fails instead of writing
 * into the real ~/.local/share/tessera. Tests of the default set XDG_DATA_HOME (or HOME) themselves.
 */
const UNUSABLE_XDG_DATA_HOME = '/dev/null/tests-name-their-data-dir';

/**
 * The parent's environment minus everything that would steer the CLI: Tessera settings, the
 * SoftHSM2 configuration (the embedded token must be found under the data dir), AWS settings
 * (the KMS tests add theirs explicitly), NODE_OPTIONS (the test runner's, not a user's) and the
 * user's data dir (UNUSABLE_XDG_DATA_HOME instead).
 */
export function cleanEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { XDG_DATA_HOME: UNUSABLE_XDG_DATA_HOME };
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(TESSERA_|AWS_|XDG_DATA_HOME$)/.test(name) || name === 'SOFTHSM2_CONF' || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Added to cleanEnv(). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

const running = new Set<ChildProcess>();

// A worker that dies without running afterAll must not leave brokers behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function describeRun(args: readonly string[], result: CliResult): string {
  return `tessera ${args.join(' ')} -> exit ${result.code ?? result.signal}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}

/** Starts `node dist/src/cli/main.js <args>`, tracked so that a dying worker takes it along. */
function spawnCli(args: readonly string[], options: CliOptions) {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: cleanEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  return child;
}

/** Runs `tessera <args>` to completion. Never rejects for a non-zero exit: callers check `code`. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  // A guard against a hung process, not a speed check: a Node start-up takes seconds on a busy machine.
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, options);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tessera ${args.join(' ')} did not finish within ${timeoutMs} ms\n--- stdout\n${stdout}--- stderr\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs `tessera <args>`, requires exit 0 and returns stdout parsed as JSON (all of it). */
export async function cliJson<T = Record<string, unknown>>(args: readonly string[], options: CliOptions = {}): Promise<T> {
  const result = await runCli(args, options);
  if (result.code !== 0) throw new Error(`expected success: ${describeRun(args, result)}`);
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document: ${describeRun(args, result)}`);
  }
}

/** Runs `tessera <args>` expecting failure; returns the result for the caller to inspect. */
export async function cliFails(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await runCli(args, options);
  if (result.code === 0) throw new Error(`expected failure: ${describeRun(args, result)}`);
  return result;
}

/** A long-running CLI process (`serve`, `dev kms`). */
export interface BackgroundCli {
  readonly child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves once `test` accepts the output so far; rejects if the process exits first or on timeout. */
  waitForOutput(test: (stdout: string, stderr: string) => boolean, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startCli(args: readonly string[], options: CliOptions = {}): BackgroundCli {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child);
      exit = { code, signal };
      resolve(exit);
    });
  });
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((listener) => listener());
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    changed();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    changed();
  });
  const describe = () => `tessera ${args.join(' ')}\n--- stdout\n${stdout.slice(-4000)}--- stderr\n${stderr.slice(-4000)}`;

  return {
    child,
    output: () => ({ stdout, stderr }),
    waitForOutput(test, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (test(stdout, stderr)) finish(resolve);
        };
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for output of ${describe()}`))), timeoutMs);
        listeners.add(check);
        void exited.then((how) => finish(() => reject(new Error(`exited (${how.code ?? how.signal}) before it was ready: ${describe()}`))));
        check();
      });
    },
    async stop(graceMs = 5_000) {
      if (exit) return exit;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Polls `url` until it answers 200, failing early if `server` exits. */
async function waitForHttp(url: string, server: BackgroundCli, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  server.child.once('close', () => (exited = true));
  for (;;) {
    if (exited || server.child.exitCode !== null) {
      const { stdout, stderr } = server.output();
      throw new Error(`the process exited before ${url} answered\n--- stdout\n${stdout}--- stderr\n${stderr}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const { stdout, stderr } = server.output();
      throw new Error(`${url} did not answer within ${timeoutMs} ms\n--- stdout\n${stdout.slice(-4000)}--- stderr\n${stderr.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Stops every CLI process still running (afterAll, and on failure). */
export async function stopAllCli(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          child.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  running.clear();
}

/** Every regular file under `dir`, recursively. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listFiles(path);
    return entry.isFile() ? [path] : [];
  });
}

/** Files under `dir` holding a PEM private key (any `-----BEGIN ... PRIVATE KEY-----` block). */
export function filesWithPemPrivateKey(dir: string): string[] {
  return listFiles(dir).filter((path) => PEM_PRIVATE_KEY.test(readFileSync(path, 'latin1')));
}

export const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Permission bits of `path`, e.g. 0o600. */
export const modeOf = (path: string): number => statSync(path).mode & 0o777;

export interface Serving {
  readonly server: BackgroundCli;
  readonly url: string;
  readonly proxyUrl: string;
  /** `env` plus the TESSERA_LISTEN and TESSERA_PROXY_LISTEN it serves on */
  readonly env: NodeJS.ProcessEnv;
}

/** `tessera serve` on free loopback ports (onFreePorts: new ones if they were taken meanwhile), answering /healthz. */
export function serveOnFreePorts(options: CliOptions & { readonly env: NodeJS.ProcessEnv }): Promise<Serving> {
  return onFreePorts(2, async ([port, proxyPort]) => {
    const env = { ...options.env, TESSERA_LISTEN: `127.0.0.1:${port}`, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxyPort}` };
    const url = `http://127.0.0.1:${port}`;
    const server = await serveOn(url, startCli(['serve'], { ...options, env }));
    return { server, url, proxyUrl: `http://127.0.0.1:${proxyPort}`, env };
  });
}

/** `server` once `url`/healthz answers; stopped if it never does. */
export async function serveOn(url: string, server: BackgroundCli): Promise<BackgroundCli> {
  try {
    await waitForHttp(`${url}/healthz`, server);
    return server;
  } catch (error) {
    await server.stop();
    throw error;
  }
}
