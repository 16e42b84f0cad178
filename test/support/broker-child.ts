import { startCli } from './cli.js';

export interface BrokerChild {
  readonly output: () => string;
  /** SIGKILL: no shutdown code runs, exactly like a crash. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `tessera serve` in its own process, configured by `env` (TESSERA_*); resolves once it listens. */
export async function startBrokerChild(env: Readonly<Record<string, string>>, timeoutMs = 60_000): Promise<BrokerChild> {
  // The ready line is an info log; test environments are often silent.
  const server = startCli(['serve'], { env: { ...env, TESSERA_LOG_LEVEL: 'info' } });
  await server.waitForOutput((stdout) => stdout.includes('tessera broker listening on'), timeoutMs);
  return {
    output: () => Object.values(server.output()).join(''),
    async kill() {
      server.child.kill('SIGKILL');
      await server.stop();
    },
    async stop() {
      await server.stop();
    },
  };
}
