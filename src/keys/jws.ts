/** Compact JWS over a signer handle, Ed25519 JWKs and thumbprints: shared with the SDK, which signs proofs with them. */
export { ed25519PublicJwk, keyThumbprint, signCompactJws } from '@tessera-broker/sdk';
