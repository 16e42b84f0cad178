import { TesseraError } from '../errors.js';

/** RFC 7512 URIs: `pkcs11:token=<label>;object=<label>[;type=...]`. */
export interface Pkcs11Uri {
  readonly token: string;
  readonly object: string;
  /** RFC 7512 object type: `private`, `secret-key`, ... */
  readonly type?: string;
}

/** Percent-encodes everything but RFC 3986 unreserved characters (RFC 7512 allows encoding any). */
const encodeAttribute = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const path = [`token=${encodeAttribute(uri.token)}`, `object=${encodeAttribute(uri.object)}`];
  if (uri.type !== undefined) path.push(`type=${encodeAttribute(uri.type)}`);
  return `pkcs11:${path.join(';')}`;
}

/**
 * Parses the path part of a PKCS#11 URI. token and object are required; other RFC 7512 attributes
 * (id, serial, manufacturer, ...) are accepted and ignored so URIs printed by p11tool still work;
 * the query part is ignored, in particular any pin-value: the PIN comes from configuration.
 */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) throw invalidUri(uri, 'it does not start with "pkcs11:"');
  const path = uri.slice('pkcs11:'.length).split('?', 1)[0] ?? '';
  const attributes = new Map<string, string>();
  for (const part of path.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalidUri(uri, `"${part}" is not an attribute=value pair`);
    const name = part.slice(0, eq);
    if (attributes.has(name)) throw invalidUri(uri, `attribute "${name}" appears twice`);
    let value: string;
    try {
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      throw invalidUri(uri, `attribute "${name}" has an invalid percent-encoding`);
    }
    attributes.set(name, value);
  }
  const token = attributes.get('token');
  const object = attributes.get('object');
  if (token === undefined || object === undefined) throw invalidUri(uri, 'it needs both token= and object=');
  const type = attributes.get('type');
  return type === undefined ? { token, object } : { token, object, type };
}

function invalidUri(uri: string, reason: string): TesseraError {
  return new TesseraError('config_invalid', `Invalid PKCS#11 URI ${JSON.stringify(uri)}: ${reason}.`);
}
