import { InvalidArgumentError, Option, type Command } from 'commander';
import { startDevKms } from '../../devkms/server.js';

const DEFAULT_LISTEN = '127.0.0.1:4599';

interface DevKmsCommandOptions {
  listen: { host: string; port: number };
  stateFile?: string;
  region: string;
}

/** `tessera dev ...`: local stand-ins for cloud services, for development only. */
export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('Development helpers (never for production)');
  dev
    .command('kms')
    .description('Run a local KMS-compatible endpoint; private keys live in this process (and --state-file), not in a real KMS')
    .addOption(new Option('--listen <host:port>', 'address to listen on').argParser(parseListen).default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN))
    .option('--state-file <file>', 'persist keys (including private keys, mode 0600) across restarts')
    .option('--region <region>', 'AWS region the endpoint claims to be', 'us-east-1')
    .action(async (options: DevKmsCommandOptions) => {
      const kms = await startDevKms({ ...options.listen, region: options.region, stateFile: options.stateFile });
      const env = `AWS_ENDPOINT_URL_KMS=${kms.url} AWS_REGION=${kms.region} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test`;
      process.stdout.write(
        `Dev KMS listening on ${kms.url} (region ${kms.region})\n` +
          `DEV ONLY: keys are held ${options.stateFile ? `in this process and in ${options.stateFile}` : 'in memory and lost on exit'}.\n` +
          `Use it with:\n  export ${env}\n`,
      );
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        const stop = (received: NodeJS.Signals) => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(received);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await kms.close();
      process.stdout.write(`Dev KMS stopped (${signal}).\n`);
    });
}

/** `host:port`, `[ipv6]:port` or `:port` (loopback). */
function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new InvalidArgumentError('expected host:port, e.g. 127.0.0.1:4599');
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}
