import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { TesseraError } from '../errors.js';
import type { ExportRecord } from './records.js';

const LINES_PER_CHUNK = 1000;

/** Export records as JSON Lines, a chunk of lines at a time (fewer, larger writes). */
export async function* toJsonLines(records: AsyncIterable<ExportRecord>): AsyncGenerator<string> {
  let chunk = '';
  let lines = 0;
  for await (const record of records) {
    chunk += `${JSON.stringify(record)}\n`;
    if (++lines === LINES_PER_CHUNK) {
      yield chunk;
      chunk = '';
      lines = 0;
    }
  }
  if (chunk) yield chunk;
}

/** Reads an export back; the verifier judges the content, this only insists on one JSON object per line. */
export async function* fromJsonLines(input: Readable): AsyncGenerator<ExportRecord> {
  let number = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    number += 1;
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new TesseraError('invalid_request', `Line ${number} of the audit export is not JSON.`);
    }
    if (typeof record !== 'object' || record === null || typeof (record as { type?: unknown }).type !== 'string') {
      throw new TesseraError('invalid_request', `Line ${number} of the audit export is not a record with a type.`);
    }
    yield record as ExportRecord;
  }
}
