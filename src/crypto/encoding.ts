import { hash, randomBytes } from 'node:crypto';

export const base64url = {
  encode: (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64url'),
  decode: (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url')),
};

/** SHA-256, base64url-encoded: how tickets, tokens and bodies are referred to without revealing them. */
export function sha256Base64url(data: Uint8Array | string): string {
  return hash('sha256', data, 'base64url');
}

/** `bytes` of CSPRNG output, base64url-encoded. */
export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}
