/**
 * Throwaway PostgreSQL clusters for tests: a real server on 127.0.0.1, never a mock.
 *
 * The cluster lives in a fresh temp dir. PostgreSQL refuses to run as root, so when we are root
 * every server binary runs as the `postgres` OS user through runuser. Host logins need a password
 * (scram-sha-256) so that tests exercise real password checks; the generated superuser password
 * is part of the returned DSN.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { onFreePorts } from './ports.js';

const execFileAsync = promisify(execFile);

export interface PostgresCluster {
  /** Superuser DSN on 127.0.0.1, password included. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Starts the server again after stop(): same data dir, same port. */
  start(): Promise<void>;
  /** Stops the server and deletes its data dir. */
  destroy(): Promise<void>;
}

/** `PG_BIN` wins; otherwise the newest /usr/lib/postgresql/<version>/bin (Debian/Ubuntu layout). */
function findPgBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error(`no PostgreSQL server binaries under ${root}/<version>/bin; set PG_BIN`);
  return join(root, newest, 'bin');
}

const isRoot = process.getuid?.() === 0;

function serverCommand(bin: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

async function run(bin: string, args: string[]): Promise<void> {
  const [command, commandArgs] = serverCommand(bin, args);
  try {
    await execFileAsync(command, commandArgs, { cwd: tmpdir() });
  } catch (error) {
    const { stderr, stdout } = error as { stderr?: string; stdout?: string };
    throw new Error(`${[command, ...commandArgs].join(' ')} failed:\n${stderr ?? ''}${stdout ?? ''}`, { cause: error });
  }
}

/**
 * A detached shell that outlives us: once this process is gone (crash, SIGKILL, Ctrl-C) it stops
 * the cluster and deletes its directory, so no server is ever left running.
 */
function spawnWatchdog(pgCtl: string, dataDir: string, dir: string): () => void {
  const [command, args] = serverCommand(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate']);
  const stopCommand = [command, ...args].map((a) => `'${a}'`).join(' ');
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 0.5; done; ${stopCommand} >/dev/null 2>&1; rm -rf '${dir}'`;
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore', cwd: tmpdir() });
  child.unref();
  return () => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  };
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = findPgBin();
  const pgCtl = join(bin, 'pg_ctl');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pg-'));
  const dataDir = join(dir, 'data');
  const password = randomBytes(18).toString('hex');
  const pwFile = join(dir, 'pwfile');
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  if (isRoot) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
    chownSync(pwFile, uid, gid);
  }

  const killWatchdog = spawnWatchdog(pgCtl, dataDir, dir);
  let port = 0;
  const start = () =>
    run(pgCtl, [
      'start', '-w', '-t', '60', '-D', dataDir, '-l', join(dir, 'server.log'),
      '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`,
    ]);
  const stop = () => run(pgCtl, ['stop', '-w', '-D', dataDir, '-m', 'fast']);

  try {
    await run(join(bin, 'initdb'), [
      '-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions',
      '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwFile}`,
    ]);
    await onFreePorts(1, async ([picked]) => {
      port = picked!;
      try {
        await start();
      } catch (error) {
        // pg_ctl says only that the server did not start; its log says why (e.g. the port in use).
        const logPath = join(dir, 'server.log');
        const log = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
        throw new Error(`${(error as Error).message}\n--- server.log\n${log.slice(-4000)}`, { cause: error });
      }
    });
  } catch (error) {
    killWatchdog();
    spawnSync(...serverCommand(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate']), { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async destroy() {
      await stop().catch(() => undefined); // already stopped is fine
      killWatchdog();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root needs the `postgres` OS user (install postgresql)');
  return { uid, gid };
}

/** Creates a fresh database in the cluster at `baseUrl` so that test files stay isolated. */
export async function createTestDatabase(baseUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `tessera_test_${randomBytes(6).toString('hex')}`;
  await withClient(baseUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await withClient(baseUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** Runs `work` on a fresh `pg` client connected to `url`, and always ends the client. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A LOGIN role with CREATEROLE and nothing else: the least privilege a backend's admin DSN needs
 * (docs/PROTOCOL.md §5.1). `superuserUrl` names the database; returns the new role's DSN for it.
 */
export async function createAdminRole(superuserUrl: string, attributes = 'CREATEROLE'): Promise<{ url: string; name: string }> {
  const name = `tessera_admin_${randomBytes(6).toString('hex')}`;
  const password = randomBytes(18).toString('hex');
  await withClient(superuserUrl, (client) => client.query(`CREATE ROLE ${name} LOGIN ${attributes} PASSWORD '${password}'`));
  const url = new URL(superuserUrl);
  url.username = name;
  url.password = password;
  return { url: url.toString(), name };
}
