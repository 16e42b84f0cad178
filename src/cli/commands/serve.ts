import type { Command } from 'commander';
import { pino } from 'pino';
import { createBroker } from '../../broker.js';
import { commandConfig } from '../context.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the broker')
    .option('--listen <host:port>', 'address to listen on (TESSERA_LISTEN; default 127.0.0.1:8700)')
    .action(async (options: { listen?: string }, command: Command) => {
      const config = commandConfig(command, { listen: options.listen });
      const logger = pino({ level: config.logLevel });
      const broker = await createBroker(config, { logger });
      const separator = config.listen.lastIndexOf(':');
      const host = config.listen.slice(0, separator).replace(/^\[|\]$/g, '');
      await broker.app.listen({ host, port: Number(config.listen.slice(separator + 1)) });
      logger.info({ publicUrl: config.publicUrl, database: config.databaseUrl.split(':')[0] }, `tessera broker listening on ${config.publicUrl}`);

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
    });
}
