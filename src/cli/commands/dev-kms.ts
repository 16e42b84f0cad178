import { parseDuration } from '@tessera-broker/sdk';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { startDevKms } from '../../devkms/server.js';

const DEFAULT_LISTEN = '127.0.0.1:4599';

interface DevKmsCommandOptions {
  listen: { host: string; port: number };
  stateFile?: string;
  region: string;
  signLatency?: number;
  asymmetricQuota?: number;
  asymmetricBurst?: number;
}

/** A simulated latency above this is a typo (e.g. a bare `25`), not a KMS. */
const MAX_SIGN_LATENCY_MS = 10_000;

/** `tessera dev ...`: local stand-ins for cloud services, for development only. */
export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('Development helpers (never for production)');
  dev
    .command('kms')
    .description('Run a local KMS-compatible endpoint; private keys live in this process (and --state-file), not in a real KMS')
    .addOption(new Option('--listen <host:port>', 'address to listen on').argParser(parseListen).default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN))
    .option('--state-file <file>', 'persist keys (including private keys, mode 0600) across restarts')
    .option('--region <region>', 'AWS region the endpoint claims to be', 'us-east-1')
    .option('--sign-latency <duration>', 'hold back every Sign and Verify answer this long, like a real KMS call (e.g. 25ms)', parseSignLatency)
    .option(
      '--asymmetric-quota <rate>',
      'requests per second shared by all Sign and Verify calls (e.g. 300/s, AWS\'s ECC default); past it: ThrottlingException',
      parseQuotaRate,
    )
    .option('--asymmetric-burst <requests>', 'Sign/Verify calls allowed at once after an idle spell (default: one second of the quota)', parsePositiveInteger)
    .action(async (options: DevKmsCommandOptions, command: Command) => {
      if (options.asymmetricBurst !== undefined && options.asymmetricQuota === undefined) command.error('error: --asymmetric-burst needs --asymmetric-quota');
      const kms = await startDevKms({
        ...options.listen,
        region: options.region,
        stateFile: options.stateFile,
        signLatencyMs: options.signLatency,
        ...(options.asymmetricQuota !== undefined && { asymmetricQuota: { ratePerSecond: options.asymmetricQuota, burst: options.asymmetricBurst } }),
      });
      const env = `AWS_ENDPOINT_URL_KMS=${kms.url} AWS_REGION=${kms.region} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test`;
      const realism = [
        options.signLatency !== undefined && `Sign/Verify latency ${options.signLatency} ms`,
        options.asymmetricQuota !== undefined &&
          `Sign/Verify quota ${options.asymmetricQuota}/s (burst ${options.asymmetricBurst ?? options.asymmetricQuota}), then ThrottlingException`,
      ].filter(Boolean);
      process.stdout.write(
        `Dev KMS listening on ${kms.url} (region ${kms.region})\n` +
          `DEV ONLY: keys are held ${options.stateFile ? `in this process and in ${options.stateFile}` : 'in memory and lost on exit'}.\n` +
          (realism.length > 0 ? `Realism: ${realism.join('; ')}.\n` : '') +
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

/** Whole milliseconds or seconds (`25ms`, `1s`): the unit is required, as a bare number would mean seconds elsewhere. */
function parseSignLatency(value: string): number {
  const ms = /^\d+(ms|s)$/.test(value.trim()) ? parseDuration(value) : undefined;
  if (ms === undefined || ms > MAX_SIGN_LATENCY_MS) throw new InvalidArgumentError(`expected a duration with its unit up to ${MAX_SIGN_LATENCY_MS / 1000}s, e.g. 25ms`);
  return ms;
}

/** `300/s` or `300`: requests per second. */
function parseQuotaRate(value: string): number {
  const match = /^(\d+)(?:\/s)?$/.exec(value.trim());
  const rate = Number(match?.[1]);
  if (!match || !(rate > 0)) throw new InvalidArgumentError('expected requests per second, e.g. 300/s');
  return rate;
}

function parsePositiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !(number > 0)) throw new InvalidArgumentError('expected a positive whole number');
  return number;
}

/** `host:port`, `[ipv6]:port` or `:port` (loopback). */
function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new InvalidArgumentError('expected host:port, e.g. 127.0.0.1:4599');
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}
