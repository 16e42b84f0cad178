import type { FastifyInstance } from 'fastify';
import { ATTRIBUTE_KEY_PATTERN } from '../../identity/identity.js';
import type { Grant, GrantService } from '../../leases/grant-service.js';
import { toIso } from '../../leases/lease.js';
import { callerOf } from '../plugins/proof-auth.js';
import { errorResponses } from '../schemas.js';
import { addressSchema } from '../schemas.js';
import { backendNameSchema, roleNameSchema, ttlSecondsSchema } from './lease-schemas.js';

/** An address, or `attr:<key>=<value>` naming every identity with that attribute. */
const subjectSchema = {
  anyOf: [addressSchema, { type: 'string', pattern: `^attr:${ATTRIBUTE_KEY_PATTERN.slice(1, -1)}=.{0,256}$` }],
} as const;

/** Scope constraints of proxied backends (docs/PROTOCOL.md §9.3): string values, lists comma-separated. */
const constraintsSchema = {
  type: 'object',
  maxProperties: 16,
  propertyNames: { pattern: '^[a-z][a-z0-9_]{0,31}$' },
  additionalProperties: { type: 'string', maxLength: 1024 },
} as const;

const grantSchema = {
  type: 'object',
  required: ['grant_id', 'subject', 'backend', 'role', 'max_ttl_seconds', 'default_ttl_seconds', 'constraints', 'created_at'],
  properties: {
    grant_id: { type: 'string' },
    subject: { type: 'string' },
    backend: { type: 'string' },
    role: { type: 'string' },
    max_ttl_seconds: { type: 'integer' },
    default_ttl_seconds: { type: 'integer' },
    constraints: constraintsSchema,
    created_at: { type: 'string' },
  },
} as const;

const grantView = (grant: Grant) => ({
  grant_id: grant.id,
  subject: grant.subject,
  backend: grant.backend,
  role: grant.role,
  max_ttl_seconds: Math.floor(grant.max_ttl_ms / 1000),
  default_ttl_seconds: Math.floor(grant.default_ttl_ms / 1000),
  constraints: JSON.parse(grant.constraints) as Record<string, string>,
  created_at: toIso(grant.created_at),
});

/** Who may lease what (admin). Deny by default: without a grant, no lease. */
export async function adminGrantRoutes(app: FastifyInstance, { grants }: { grants: GrantService }): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: { subject: string; backend: string; role: string; max_ttl_seconds: number; default_ttl_seconds?: number; constraints?: Record<string, string> } }>(
    '/v1/admin/grants',
    {
      schema: {
        body: {
          type: 'object',
          required: ['subject', 'backend', 'role', 'max_ttl_seconds'],
          additionalProperties: false,
          properties: {
            subject: subjectSchema,
            backend: backendNameSchema,
            role: roleNameSchema,
            max_ttl_seconds: ttlSecondsSchema,
            default_ttl_seconds: ttlSecondsSchema,
            constraints: constraintsSchema,
          },
        },
        response: { 201: grantSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { subject, backend, role, max_ttl_seconds, default_ttl_seconds, constraints } = request.body;
      const grant = await grants.create(
        {
          subject,
          backend,
          role,
          maxTtlMs: max_ttl_seconds * 1000,
          ...(default_ttl_seconds !== undefined && { defaultTtlMs: default_ttl_seconds * 1000 }),
          ...(constraints !== undefined && { constraints }),
        },
        callerOf(request).id,
      );
      return reply.status(201).send(grantView(grant));
    },
  );

  app.get<{ Querystring: { backend?: string; subject?: string } }>(
    '/v1/admin/grants',
    {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { backend: { type: 'string' }, subject: { type: 'string' } } },
        response: { 200: { type: 'object', required: ['grants'], properties: { grants: { type: 'array', items: grantSchema } } }, ...errorResponses },
      },
    },
    async (request) => ({ grants: (await grants.list(request.query)).map(grantView) }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/admin/grants/:id',
    {
      schema: {
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 128 } } },
        response: { 200: { type: 'object', required: ['grant_id', 'revoked'], properties: { grant_id: { type: 'string' }, revoked: { type: 'boolean' } } }, ...errorResponses },
      },
    },
    async (request) => {
      await grants.revoke(request.params.id, callerOf(request).id);
      return { grant_id: request.params.id, revoked: true };
    },
  );
}
