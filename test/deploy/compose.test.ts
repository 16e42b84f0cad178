/**
 * docker-compose.yml without a Docker engine: Debian's docker-compose validates it (`config -q`:
 * schema, types, conditions), and the topology is checked here — what `config` does not check:
 * dependencies that exist, replicas that share database, keys and data, and public URLs that reach
 * the load balancer's published ports, from the host, through deploy/nginx.conf to every replica.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { proxyTrust } from '../../src/http/client-address.js';
import { REPO_ROOT } from '../support/cli.js';
import { brokerReplicas, COMPOSE_FILE, flagValue, portOf, publishedPorts, readCompose, tesseraService } from '../support/compose.js';

const execFileAsync = promisify(execFile);
const compose = readCompose();
const replicas = brokerReplicas(compose);
const [initName, init] = tesseraService(compose, 'init');
const [kmsName, kms] = tesseraService(compose, 'dev', 'kms');
const env = replicas[0]![1].environment ?? {};

describe('docker-compose.yml', () => {
  it('is valid for Compose: docker-compose config -q', async () => {
    const run = execFileAsync('docker-compose', ['--file', COMPOSE_FILE, '--project-directory', REPO_ROOT, 'config', '--quiet'], { cwd: REPO_ROOT });
    await expect(run.catch((error: NodeJS.ErrnoException & { stderr?: string }) => {
      throw new Error(error.code === 'ENOENT' ? 'docker-compose is missing: run scripts/system-deps.sh --test' : `docker-compose config: ${error.stderr}`);
    })).resolves.toBeDefined();
  });

  it('names only services that exist in depends_on, and volumes it declares', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dependency of Object.keys(service.depends_on ?? {})) expect(compose.services, `${name} depends on ${dependency}`).toHaveProperty([dependency]);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) expect(existsSync(join(REPO_ROOT, source)), `${name} mounts ${source}`).toBe(true);
        else expect(compose.volumes, `${name} mounts volume ${source}`).toHaveProperty([source]);
      }
    }
  });

  it('runs two or more identical broker replicas after a one-shot init', () => {
    expect(replicas.length).toBeGreaterThanOrEqual(2);
    for (const [name, replica] of replicas) {
      expect(replica.environment, name).toEqual(env);
      expect(replica.volumes, name).toEqual(init.volumes);
      expect(replica.image, name).toBe(init.image);
      expect(replica.depends_on, name).toEqual({ [initName]: { condition: 'service_completed_successfully' } });
    }
    expect(init.environment).toEqual(env);
    expect(init.depends_on).toMatchObject({ [kmsName]: { condition: 'service_healthy' } });
  });

  it('shares one KMS: the replicas use the kms key store at the dev KMS service', () => {
    expect(env.TESSERA_KEYSTORE).toBe('kms');
    const endpoint = new URL(env.AWS_ENDPOINT_URL_KMS!);
    expect(endpoint.hostname).toBe(kmsName);
    expect(Number(endpoint.port)).toBe(portOf(flagValue(kms.command, '--listen')));
  });

  it('shares one PostgreSQL database, owned by a role without superuser made by deploy/postgres-init.sh', () => {
    const database = new URL(env.TESSERA_DATABASE_URL!);
    const postgres = compose.services[database.hostname];
    expect(postgres?.image).toMatch(/^postgres:/);
    expect(postgres?.volumes).toContain('./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/tessera.sh:ro');
    expect(postgres?.environment).toMatchObject({ TESSERA_DB_USER: database.username, TESSERA_DB_PASSWORD: database.password });
    expect(database.pathname).toBe(`/${database.username}`);
    expect(database.username).not.toBe('postgres');
    expect(init.depends_on).toMatchObject({ [database.hostname]: { condition: 'service_healthy' } });
  });

  it('hands out public URLs that reach every replica from the host through the load balancer', () => {
    const config = loadConfig({}, { ...env, TESSERA_DATA_DIR: join(tmpdir(), 'tessera-compose-unused') });
    const nginx = readNginx();
    const [lbName, lb] = Object.entries(compose.services).find(([, service]) => service.image?.startsWith('nginx:'))!;
    expect(lb.volumes).toContain('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro');
    for (const [publicUrl, listen] of [[config.publicUrl, config.listen], [config.proxyPublicUrl, config.proxyListen]] as const) {
      const url = new URL(publicUrl);
      expect(['localhost', '127.0.0.1'], publicUrl).toContain(url.hostname);
      const published = publishedPorts(lb).find((port) => port.hostPort === Number(url.port));
      expect(published, `${lbName} publishes ${publicUrl}'s port on the host`).toBeDefined();
      const upstream = nginx.servers.get(published!.containerPort);
      expect(upstream, `deploy/nginx.conf listens on ${published!.containerPort}`).toBeDefined();
      expect(nginx.upstreams.get(upstream!)).toEqual(replicas.map(([name]) => `${name}:${portOf(listen)}`));
    }
    for (const [name] of replicas) expect(lb.depends_on).toMatchObject({ [name]: { condition: 'service_healthy' } });
  });

  it('trusts X-Forwarded-For from the load balancer alone, at a fixed address, and the balancer writes the address it saw', () => {
    const config = loadConfig({}, { ...env, TESSERA_DATA_DIR: join(tmpdir(), 'tessera-compose-unused') });
    const [lbName, lb] = Object.entries(compose.services).find(([, service]) => service.image?.startsWith('nginx:'))!;
    const lbAddress = lb.networks?.default?.ipv4_address;
    expect(lbAddress, `${lbName} has a fixed address`).toBeDefined();
    expect(config.trustedProxies).toEqual([lbAddress]);
    // The fixed address lies in the network's own subnet (Compose refuses it otherwise).
    const subnet = compose.networks?.default?.ipam?.config?.[0]?.subnet;
    expect(subnet && proxyTrust([subnet])(lbAddress!, 0), `${lbAddress} in ${subnet}`).toBe(true);
    // Replaced, not appended to: a client's own X-Forwarded-For does not reach the brokers.
    expect(readNginx().forwardedFor).toBe('$remote_addr');
  });

  it('needs its explicit public URLs: without them the replicas would refuse to start', () => {
    const { TESSERA_PUBLIC_URL: _public, ...withoutPublicUrl } = env;
    expect(() => loadConfig({}, { ...withoutPublicUrl, TESSERA_DATA_DIR: join(tmpdir(), 'tessera-compose-unused') })).toThrow(/TESSERA_PUBLIC_URL/);
  });
});

/** deploy/nginx.conf: its upstream blocks (name -> servers) and which upstream each listen port proxies to. */
function readNginx(): { upstreams: Map<string, string[]>; servers: Map<number, string>; forwardedFor: string | undefined } {
  const text = readFileSync(join(REPO_ROOT, 'deploy', 'nginx.conf'), 'utf8').replace(/#.*$/gm, '');
  const upstreams = new Map<string, string[]>();
  for (const [, name, body] of text.matchAll(/upstream\s+(\w+)\s*\{([^}]*)\}/g)) {
    upstreams.set(name!, [...body!.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((match) => match[1]!));
  }
  const servers = new Map<number, string>();
  for (const [, port, upstream] of text.matchAll(/listen\s+(\d+);\s*location\s+\/\s*\{\s*proxy_pass\s+http:\/\/(\w+);/g)) {
    servers.set(Number(port), upstream!);
  }
  const forwardedFor = /proxy_set_header\s+X-Forwarded-For\s+([^;]+);/i.exec(text)?.[1];
  return { upstreams, servers, forwardedFor };
}
