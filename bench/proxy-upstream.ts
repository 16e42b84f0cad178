/**
 * The proxy section's upstream, run as its own process so it competes with neither the broker nor
 * the load generator: a Stripe-like JSON route and an OpenAI-like SSE stream, each answering after
 * BENCH_UPSTREAM_DELAY_MS (a remote API's service time), only for the real secret. Prints its port.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const secret = `Bearer ${process.env.BENCH_UPSTREAM_SECRET ?? ''}`;
const delayMs = Number(process.env.BENCH_UPSTREAM_DELAY_MS ?? '0');
const CHARGE = JSON.stringify({ id: 'ch_bench', object: 'charge', amount: 4200, currency: 'eur', status: 'succeeded', metadata: {} });
const CHUNK = (content: string) => `data: ${JSON.stringify({ id: 'chatcmpl-b', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] })}\n\n`;
const later = (work: () => void) => (delayMs > 0 ? setTimeout(work, delayMs) : setImmediate(work));

const server = createServer({ keepAlive: true, noDelay: true }, (request, response) => {
  request.resume();
  if (request.headers.authorization !== secret) return void response.writeHead(401).end('{"error":{"type":"invalid_request_error"}}');
  if (request.url === '/v1/chat/completions') {
    // First chunk after the service time, then the rest of the stream.
    return void later(() => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(CHUNK('first'));
      setTimeout(() => response.end(`${CHUNK(' rest')}data: [DONE]\n\n`), 20);
    });
  }
  later(() => response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(CHARGE) }).end(CHARGE));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
