import type { Command } from 'commander';
import { pino } from 'pino';
import { parseHostPort } from '../../config/config.js';
import { TesseraError } from '../../errors.js';
import { commandConfig } from '../context.js';
import { logDestination } from '../log-output.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the broker')
    .option('--listen <host:port>', 'address to listen on (TESSERA_LISTEN; default 127.0.0.1:8700)')
    .option('--proxy-listen <host:port>', 'address of the credential proxy (TESSERA_PROXY_LISTEN; default: the next port up)')
    .action(async (options: { listen?: string; proxyListen?: string }, command: Command) => {
      const config = commandConfig(command, { listen: options.listen, proxyListen: options.proxyListen });
      const logger = pino({ level: config.logLevel }, await logDestination(process.stdout));
      // Loaded here, not at the top: every CLI command imports this module, and only serve needs the broker.
      const { createBroker } = await import('../../broker.js');
      const broker = await createBroker(config, { logger });

      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping');
        broker.close().then(
          () => process.exit(0),
          (error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));

      try {
        await listenOn('broker', config.listen, 'TESSERA_LISTEN', (address) => broker.app.listen(address));
        await listenOn('credential proxy', config.proxyListen, 'TESSERA_PROXY_LISTEN', (address) => broker.proxy.listen(address));
      } catch (error) {
        // A listener that is up would keep the process alive after the error is reported.
        await broker.close();
        throw error;
      }
      // Logged once both listeners accept: scripts and tests wait for this line.
      logger.info({ proxyUrl: config.proxyPublicUrl }, `tessera credential proxy listening on ${config.proxyPublicUrl}`);
      logger.info({ publicUrl: config.publicUrl, database: config.databaseUrl.split(':')[0] }, `tessera broker listening on ${config.publicUrl}`);
    });
}

/** Starts one listener; a failure (a port in use) names the listener, its address and its setting. */
async function listenOn(name: string, address: string, setting: string, listen: (hostPort: { host: string; port: number }) => Promise<unknown>): Promise<void> {
  try {
    await listen(parseHostPort(address));
  } catch (error) {
    const reason = (error as { code?: string }).code ?? (error instanceof Error ? error.message : String(error));
    throw new TesseraError('config_invalid', `The ${name} cannot listen on ${address} (${setting}): ${reason}`, { cause: error });
  }
}
