import type { IncomingMessage } from 'node:http';

/** Bodies the scope checks read (a refund, a chat request) are small; anything larger is refused. */
export const MAX_INSPECTED_BODY_BYTES = 4 * 1024 * 1024;

/** Whether the request has a body at all (HTTP/1.1: a length or a transfer coding announces it). */
export const hasBody = (request: IncomingMessage): boolean =>
  request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');

/** Reads the whole body, or returns undefined as soon as it exceeds `limit` bytes. */
export async function readBody(request: IncomingMessage, limit = MAX_INSPECTED_BODY_BYTES): Promise<Buffer | undefined> {
  if (Number(request.headers['content-length'] ?? 0) > limit) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
