import type { FastifyInstance } from 'fastify';
import type { AuditSink } from '../../audit/audit-log.js';
import { base64url } from '../../crypto/encoding.js';
import type { IdentityService } from '../../identity/identities.js';
import { identityView, type IdentityRole, type IdentityStatus } from '../../identity/identity.js';
import type { Store } from '../../store/database.js';
import { callerOf } from '../plugins/proof-auth.js';
import { addressSchema, attributesSchema, errorResponses, identitySchema } from '../schemas.js';

export interface AdminRouteOptions {
  readonly identities: IdentityService;
  readonly audit: AuditSink;
  readonly store: Store;
}

type AddressParams = { Params: { address: string } };

const addressParams = { type: 'object', required: ['address'], properties: { address: addressSchema } } as const;

/** Platform-team operations. Every route requires an admin proof; every call is audited. */
export async function adminRoutes(app: FastifyInstance, { identities, audit, store }: AdminRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: { address: string; public_key: string; key_uri: string; attributes?: Record<string, string>; role?: IdentityRole } }>(
    '/v1/admin/identities',
    {
      schema: {
        body: {
          type: 'object',
          required: ['address', 'public_key', 'key_uri'],
          additionalProperties: false,
          properties: {
            address: addressSchema,
            public_key: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
            key_uri: { type: 'string', pattern: '^(pkcs11|aws-kms):', maxLength: 1024 },
            attributes: attributesSchema,
            role: { type: 'string', enum: ['agent', 'reviewer'] },
          },
        },
        response: { 201: identitySchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { address, public_key, key_uri, attributes, role } = request.body;
      const identity = await identities.register(
        { address, publicKey: base64url.decode(public_key), keyUri: key_uri, attributes: attributes ?? {}, role: role ?? 'agent' },
        callerOf(request).id,
      );
      return reply.status(201).send(identityView(identity));
    },
  );

  app.get<{ Querystring: { status?: IdentityStatus; role?: IdentityRole } }>(
    '/v1/admin/identities',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'string', enum: ['pending', 'active', 'revoked'] }, role: { type: 'string', enum: ['agent', 'admin', 'reviewer'] } },
        },
        response: { 200: { type: 'object', required: ['identities'], properties: { identities: { type: 'array', items: identitySchema } } }, ...errorResponses },
      },
    },
    async (request) => {
      const list = await identities.list(request.query);
      await audit.append({ actor: callerOf(request).id, action: 'identity.listed', outcome: 'success', details: { ...request.query, count: list.length } });
      return { identities: list.map(identityView) };
    },
  );

  app.get<AddressParams>(
    '/v1/admin/identities/:address',
    { schema: { params: addressParams, response: { 200: identitySchema, ...errorResponses } } },
    async (request) => {
      const identity = await identities.getByAddress(request.params.address);
      await audit.append({ actor: callerOf(request).id, action: 'identity.viewed', outcome: 'success', identityId: identity.id });
      return identityView(identity);
    },
  );

  app.post<AddressParams & { Body: { ttl_seconds?: number } }>(
    '/v1/admin/identities/:address/tickets',
    {
      schema: {
        params: addressParams,
        body: { type: 'object', additionalProperties: false, properties: { ttl_seconds: { type: 'integer', minimum: 1 } } },
        response: {
          201: {
            type: 'object',
            required: ['identity_id', 'address', 'ticket', 'ticket_expires_at'],
            properties: { identity_id: { type: 'string' }, address: { type: 'string' }, ticket: { type: 'string' }, ticket_expires_at: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { address } = request.params;
      const ttl = request.body?.ttl_seconds;
      const issued = await identities.issueTicket(address, ttl === undefined ? undefined : ttl * 1000, callerOf(request).id);
      const identity = await identities.getByAddress(address);
      return reply.status(201).send({ identity_id: identity.id, address, ticket: issued.ticket, ticket_expires_at: new Date(issued.expiresAt).toISOString() });
    },
  );

  app.post<AddressParams & { Body: { reason: string } }>(
    '/v1/admin/identities/:address/revoke',
    {
      schema: {
        params: addressParams,
        body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } } },
        response: { 200: identitySchema, ...errorResponses },
      },
    },
    async (request) => identityView(await identities.revoke(request.params.address, request.body.reason, callerOf(request).id)),
  );

  app.get<{ Querystring: { identity?: string; action?: string; after?: number; limit?: number } }>(
    '/v1/admin/audit',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            identity: { type: 'string' },
            action: { type: 'string' },
            after: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['events'],
            properties: {
              events: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    seq: { type: 'integer' },
                    at: { type: 'string' },
                    actor: { type: ['string', 'null'] },
                    action: { type: 'string' },
                    outcome: { type: 'string' },
                    identity_id: { type: ['string', 'null'] },
                    reason: { type: ['string', 'null'] },
                    details: { type: 'object', additionalProperties: true },
                  },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { identity, action, after, limit } = request.query;
      let query = store.db.selectFrom('audit_events').selectAll().orderBy('seq').limit(limit ?? 100);
      if (identity) {
        const byAddress = await identities.findByAddress(identity);
        query = query.where('identity_id', '=', byAddress?.id ?? identity);
      }
      if (action) query = query.where('action', '=', action);
      if (after !== undefined) query = query.where('seq', '>', after);
      const rows = await query.execute();
      return {
        events: rows.map((row) => ({ ...row, seq: Number(row.seq), at: new Date(row.at).toISOString(), details: JSON.parse(row.details) as object })),
      };
    },
  );
}
