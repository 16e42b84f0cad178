import { createReadStream, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { JSONWebKeySet } from 'jose';
import { exportRecords } from '../../audit/export.js';
import { fromJsonLines, toJsonLines } from '../../audit/jsonl.js';
import type { ExportRecord } from '../../audit/records.js';
import { verifyAuditLog, type VerifyReport } from '../../audit/verify.js';
import type { Config } from '../../config/config.js';
import { TesseraError } from '../../errors.js';
import { openStore, type Store } from '../../store/database.js';
import type { ReviewEvent } from '../../review/reader.js';
import { eventTable, pointInTime } from '../audit-table.js';
import { brokerUrl, commandConfig, output } from '../context.js';
import { REVIEWER_KEY_FLAGS, REVIEWER_KEY_HELP, reviewerRequest } from '../review-client.js';
import { queryString } from '../signed-request.js';

interface RangeOptions {
  from?: number;
  to?: number;
  jwks?: string;
}

const seqNumber = (text: string) => {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new TesseraError('invalid_request', `Not a sequence number: ${text}`);
  return value;
};

/** The authority keys checkpoints must verify against: a pinned file, else what the broker publishes. */
async function loadJwks(command: Command, config: Config, file: string | undefined): Promise<JSONWebKeySet> {
  if (file) return JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
  const url = `${brokerUrl(command, config).replace(/\/+$/, '')}/.well-known/audit-jwks.json`;
  const response = await fetch(url).catch((error: unknown) => {
    throw new TesseraError('config_invalid', `Cannot fetch ${url} (${(error as Error).message}); pass --jwks <file>.`);
  });
  if (!response.ok) throw new TesseraError('config_invalid', `${url} answered ${response.status}; pass --jwks <file>.`);
  return (await response.json()) as JSONWebKeySet;
}

/** Reads the broker's database directly: these commands run on the broker host, next to its data dir. */
async function withStore<T>(config: Config, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config.databaseUrl, { create: false });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

function summary(report: VerifyReport): string {
  const counts = `${report.events} events (seq ${report.from}..${report.to}), ${report.checkpoints} checkpoints, ${report.proofs} proofs, ${report.delegations} delegations`;
  if (!report.problem) return `OK: ${counts} verified; last checkpoint at seq ${report.lastCheckpoint ?? 'none'}`;
  return `BAD at seq ${report.problem.seq}: ${report.problem.code}: ${report.problem.message}\n(checked before it: ${counts})`;
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('list, export and verify the tamper-evident audit log');

  audit
    .command('list')
    .description('list audit events through the broker (reviewer or admin), filtered; the review page has the same filters')
    .option('--identity <address>', 'events about this identity (address or id)')
    .option('--actor <id>', 'events caused by this identity id')
    .option('--lease <lease_id>', 'events about this lease')
    .option('--backend <name>', 'events about this backend')
    .option('--on-behalf-of <sub>', 'events of delegation chains acting for this user (its token\'s sub)')
    .option('--action <action>', 'e.g. lease.denied, identity.revoked')
    .option('--outcome <outcome>', 'success | denied | failure')
    .option('--since <time>', 'RFC 3339 time, or a duration ago such as 1h', pointInTime)
    .option('--until <time>', 'RFC 3339 time, or a duration ago', pointInTime)
    .option('--after <seq>', 'only events after this sequence number (next page, ascending)')
    .option('--before <seq>', 'only events before this sequence number (next page, descending)')
    .option('--order <order>', 'asc (default) | desc')
    .option('--limit <n>', 'at most this many events (default 100, at most 1000)')
    .option(REVIEWER_KEY_FLAGS, REVIEWER_KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (options: Record<string, string | undefined> & { json?: boolean }, command: Command) => {
      const { key, json: _json, onBehalfOf, ...filters } = options;
      const { events } = await reviewerRequest<{ events: ReviewEvent[] }>(command, key, 'GET', `/v1/review/audit${queryString({ ...filters, on_behalf_of: onBehalfOf })}`);
      output(options.json, events, () => eventTable(events));
    });

  audit
    .command('export')
    .description('write the audit log as JSON Lines: events, checkpoints, identity keys and JWKS')
    .option('--jsonl', 'JSON Lines (the export format)')
    .option('--from <seq>', 'first sequence number', seqNumber)
    .option('--to <seq>', 'last sequence number', seqNumber)
    .option('--jwks <file>', 'authority JWKS to embed (default: fetched from the broker)')
    .action(async (options: RangeOptions, command: Command) => {
      const config = commandConfig(command);
      const jwks = await loadJwks(command, config, options.jwks);
      await withStore(config, async (store) => {
        const records = exportRecords(store.repos, { issuer: config.publicUrl, jwks, from: options.from, to: options.to, exportedAt: Date.now() });
        await pipeline(Readable.from(toJsonLines(records)), process.stdout);
      });
    });

  audit
    .command('verify')
    .description('recompute the hash chain, check checkpoint signatures and stored proofs; exit 1 at the first bad seq')
    .option('--from <seq>', 'first sequence number', seqNumber)
    .option('--to <seq>', 'last sequence number', seqNumber)
    .option('--file <export.jsonl>', 'verify an export offline instead of the database')
    .option('--jwks <file>', 'pinned authority JWKS (default: fetched from the broker; for --file, the copy inside the export)')
    .option('--json', 'print the report as JSON')
    .action(async (options: RangeOptions & { file?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const report = options.file
        ? await verifyFile(options.file, options)
        : await withStore(config, async (store) => {
            const jwks = await loadJwks(command, config, options.jwks);
            const records = exportRecords(store.repos, { issuer: config.publicUrl, jwks, from: options.from, to: options.to, exportedAt: Date.now() });
            return verifyAuditLog(records);
          });
      output(options.json, report, () => summary(report));
      if (!report.ok) process.exitCode = 1;
    });
}

async function verifyFile(file: string, options: RangeOptions): Promise<VerifyReport> {
  const jwks = options.jwks ? (JSON.parse(readFileSync(options.jwks, 'utf8')) as JSONWebKeySet) : undefined;
  if (!jwks) process.stderr.write('tessera: checking checkpoints against the JWKS inside the export; pin the broker key with --jwks <file>\n');
  return verifyAuditLog(inRange(fromJsonLines(createReadStream(file)), options), { jwks });
}

/** Narrows an export to --from/--to: the header's range shrinks with it, so a shorter range is no "truncation". */
async function* inRange(records: AsyncIterable<ExportRecord>, { from, to }: RangeOptions): AsyncGenerator<ExportRecord> {
  let first = 1;
  let last = Number.MAX_SAFE_INTEGER;
  for await (const record of records) {
    if (record.type === 'header') {
      first = Math.max(record.from, from ?? record.from);
      last = Math.min(record.to, to ?? record.to);
      yield { ...record, from: first, to: last };
    } else if (record.type === 'identity' || record.type === 'session' || (record.seq >= first && (record.seq <= last || (record.type === 'checkpoint' && to === undefined)))) {
      // Checkpoints past the end stay when the range runs to the end: they expose a cut tail.
      yield record;
    }
  }
}
