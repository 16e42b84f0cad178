/**
 * The baseline the broker's request rate is judged against: a bare node:http server doing one
 * node:crypto Ed25519 verification per request (of the request's proof, against its kid's cached
 * KeyObject) and nothing else: no routing, no database, no claim checks. Run as its own process,
 * on the CPU the broker gets. BENCH_BARE_KEYS is a JSON object kid -> base64url public key.
 * Prints its port.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const keys = new Map<string, KeyObject>(
  Object.entries(JSON.parse(process.env.BENCH_BARE_KEYS ?? '{}') as Record<string, string>).map(([kid, x]) => [
    kid,
    createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }),
  ]),
);
const OK = '{"ok":true}';

const server = createServer({ keepAlive: true, noDelay: true }, (request, response) => {
  request.resume();
  const token = request.headers.authorization?.slice('Proof '.length) ?? '';
  const [header = '', payload = '', signature = ''] = token.split('.');
  let good = false;
  try {
    const key = keys.get((JSON.parse(Buffer.from(header, 'base64url').toString()) as { kid?: string }).kid ?? '');
    good = key !== undefined && verify(null, Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'));
  } catch {
    good = false;
  }
  if (!good) return void response.writeHead(401).end();
  request.on('end', () => response.writeHead(200, { 'content-type': 'application/json', 'content-length': OK.length }).end(OK));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
