/**
 * docker-compose.yml as data, for the tests that check it (test/deploy/compose.test.ts) and the one
 * that runs its topology as processes (test/deploy/topology.test.ts): both read the same file, so
 * the processes get the settings the containers would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from './cli.js';

export const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');

export interface ComposeService {
  readonly image?: string;
  readonly build?: unknown;
  readonly command?: readonly string[];
  readonly environment?: Readonly<Record<string, string>>;
  readonly depends_on?: Readonly<Record<string, { readonly condition: string }>>;
  readonly ports?: readonly string[];
  readonly volumes?: readonly string[];
  readonly healthcheck?: { readonly test: readonly string[] };
  readonly networks?: Readonly<Record<string, { readonly ipv4_address?: string }>>;
}

export interface ComposeFile {
  readonly services: Readonly<Record<string, ComposeService>>;
  readonly volumes?: Readonly<Record<string, unknown>>;
  readonly networks?: Readonly<Record<string, { readonly ipam?: { readonly config?: readonly { readonly subnet?: string }[] } }>>;
}

/** The file with its anchors and merge keys (`<<:`) resolved, as Compose reads it. */
export function readCompose(): ComposeFile {
  return parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile;
}

/** The service running `tessera <args...>` (first word `tessera`), by the arguments its command starts with. */
function tesseraServices(compose: ComposeFile, ...args: string[]): [string, ComposeService][] {
  return Object.entries(compose.services).filter(
    ([, service]) => service.command?.[0] === 'tessera' && args.every((arg, index) => service.command?.[index + 1] === arg),
  );
}

export function tesseraService(compose: ComposeFile, ...args: string[]): [string, ComposeService] {
  const [found, ...more] = tesseraServices(compose, ...args);
  if (!found || more.length > 0) throw new Error(`expected one service running tessera ${args.join(' ')} in ${COMPOSE_FILE}`);
  return found;
}

/** The services whose command is `tessera serve`: the broker replicas. */
export const brokerReplicas = (compose: ComposeFile): [string, ComposeService][] => tesseraServices(compose, 'serve');

/** The value following `flag` in a command, e.g. `--listen`. */
export function flagValue(command: readonly string[] | undefined, flag: string): string {
  const index = command?.indexOf(flag) ?? -1;
  const value = index >= 0 ? command?.[index + 1] : undefined;
  if (value === undefined) throw new Error(`no ${flag} in [${command?.join(' ')}]`);
  return value;
}

/** A command with `flag`'s value replaced. */
export function withFlag(command: readonly string[], flag: string, value: string): string[] {
  flagValue(command, flag);
  return command.map((word, index) => (command[index - 1] === flag ? value : word));
}

/** `"127.0.0.1:8700:8700"` (host address, host port, container port) as parts. */
export function publishedPorts(service: ComposeService): { hostIp: string; hostPort: number; containerPort: number }[] {
  return (service.ports ?? []).map((spec) => {
    const match = /^(?:(.+):)?(\d+):(\d+)$/.exec(spec);
    if (!match) throw new Error(`unsupported port syntax "${spec}"`);
    return { hostIp: match[1] ?? '0.0.0.0', hostPort: Number(match[2]), containerPort: Number(match[3]) };
  });
}

/** `host:port` -> port. */
export const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));
