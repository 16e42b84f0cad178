import type { FastifyInstance } from 'fastify';
import { base64url } from '../../crypto/encoding.js';
import { type Authority, DEFAULT_AUTHORITY_OVERLAP_MS } from '../../identity/authority.js';
import { DEFAULT_ROTATION_GRACE_MS, type IdentityService } from '../../identity/identities.js';
import { type IdentityKey, identityView } from '../../identity/identity.js';
import type { WrappingKeyRotation } from '../../secrets/wrapping-key-rotation.js';
import { callerOf } from '../plugins/proof-auth.js';
import {
  AddressParams,
  errorResponses,
  IdentityKeyList,
  type IdentityKeyView,
  RotateAuthorityRequest,
  RotateAuthorityResponse,
  RotateIdentityKeyRequest,
  RotateIdentityKeyResponse,
  RotateWrappingKeyResponse,
  upstreamErrorResponses,
} from '@tessera-broker/sdk/wire';

export interface AdminKeyRouteOptions {
  readonly identities: IdentityService;
  readonly authority: Authority;
  readonly rotateWrappingKey: (actor: string) => Promise<WrappingKeyRotation>;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function identityKeyView(key: IdentityKey): IdentityKeyView {
  return {
    key_id: key.keyId,
    key_uri: key.keyUri,
    public_key: base64url.encode(key.publicKey),
    created_at: new Date(key.createdAt).toISOString(),
    not_after: iso(key.notAfter),
    retired_at: iso(key.retiredAt),
  };
}

type AddressRoute = { Params: AddressParams };

/** Key rotation (docs/PROTOCOL.md §4.6): identity keys, the authority key and the wrapping key. Admin only, audited. */
export async function adminKeyRoutes(app: FastifyInstance, { identities, authority, rotateWrappingKey }: AdminKeyRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.get<AddressRoute>(
    '/v1/admin/identities/:address/keys',
    { schema: { params: AddressParams, response: { 200: IdentityKeyList, ...errorResponses } } },
    async (request) => {
      const identity = await identities.getByAddress(request.params.address);
      return { identity_id: identity.id, keys: (await identities.keysOf(identity.id)).map(identityKeyView) };
    },
  );

  app.post<AddressRoute & { Body: RotateIdentityKeyRequest }>(
    '/v1/admin/identities/:address/keys',
    { schema: { params: AddressParams, body: RotateIdentityKeyRequest, response: { 201: RotateIdentityKeyResponse, ...errorResponses } } },
    async (request, reply) => {
      const { public_key, key_uri, grace_seconds } = request.body;
      const graceMs = grace_seconds === undefined ? DEFAULT_ROTATION_GRACE_MS : grace_seconds * 1000;
      const rotated = await identities.rotateKey(request.params.address, { publicKey: base64url.decode(public_key), keyUri: key_uri }, graceMs, callerOf(request).id);
      return reply.status(201).send({ identity: identityView(rotated.identity), key: identityKeyView(rotated.key), previous_key: identityKeyView(rotated.previous) });
    },
  );

  app.post<{ Body: RotateAuthorityRequest }>(
    '/v1/admin/authority/rotate',
    { schema: { body: RotateAuthorityRequest, response: { 200: RotateAuthorityResponse, ...upstreamErrorResponses } } },
    async (request) => {
      const overlap = request.body?.overlap_seconds;
      const rotated = await authority.rotate(overlap === undefined ? DEFAULT_AUTHORITY_OVERLAP_MS : overlap * 1000, callerOf(request).id);
      return {
        kid: rotated.kid,
        key_uri: rotated.keyUri,
        previous_kid: rotated.previousKid,
        previous_key_uri: rotated.previousKeyUri,
        previous_not_after: new Date(rotated.previousNotAfter).toISOString(),
      };
    },
  );

  app.post(
    '/v1/admin/wrapping-key/rotate',
    { schema: { response: { 200: RotateWrappingKeyResponse, ...upstreamErrorResponses } } },
    async (request) => {
      const rotated = await rotateWrappingKey(callerOf(request).id);
      return { key_uri: rotated.keyUri, previous_key_uri: rotated.previousKeyUri, rewrapped: rotated.rewrapped };
    },
  );
}
