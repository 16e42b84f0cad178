import type { FastifyInstance } from 'fastify';
import { BACKEND_TYPES, type BackendType } from '../../backends/registry.js';
import type { BackendInfo, BackendService } from '../../leases/backend-service.js';
import { toIso } from '../../leases/lease.js';
import { callerOf } from '../plugins/proof-auth.js';
import { backendNameSchema, upstreamErrorResponses } from './lease-schemas.js';

type NameParams = { Params: { name: string } };
const nameParams = { type: 'object', required: ['name'], properties: { name: backendNameSchema } } as const;

/** Never the root secret: the response schema has no field that could carry it. */
const backendSchema = {
  type: 'object',
  required: ['name', 'type', 'roles', 'created_at'],
  properties: { name: { type: 'string' }, type: { type: 'string' }, roles: { type: 'array', items: { type: 'string' } }, created_at: { type: 'string' } },
} as const;

const backendView = (backend: BackendInfo) => ({ name: backend.name, type: backend.type, roles: backend.roles, created_at: toIso(backend.createdAt) });

/** Credential backends and their sealed root secrets (admin). */
export async function adminBackendRoutes(app: FastifyInstance, { backends }: { backends: BackendService }): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: { name: string; type: BackendType } & Record<string, unknown> }>(
    '/v1/admin/backends',
    {
      schema: {
        // The type-specific fields (e.g. connection_url, roles) are validated by the backend registry.
        body: { type: 'object', required: ['name', 'type'], properties: { name: backendNameSchema, type: { type: 'string', enum: BACKEND_TYPES } } },
        response: { 201: backendSchema, ...upstreamErrorResponses },
      },
    },
    async (request, reply) => {
      const { name, type, ...settings } = request.body;
      return reply.status(201).send(backendView(await backends.add(name, type, settings, callerOf(request).id)));
    },
  );

  app.get(
    '/v1/admin/backends',
    {
      schema: {
        response: { 200: { type: 'object', required: ['backends'], properties: { backends: { type: 'array', items: backendSchema } } }, ...upstreamErrorResponses },
      },
    },
    async () => ({ backends: (await backends.list()).map(backendView) }),
  );

  app.get<NameParams>(
    '/v1/admin/backends/:name',
    { schema: { params: nameParams, response: { 200: backendSchema, ...upstreamErrorResponses } } },
    async (request) => backendView(await backends.get(request.params.name)),
  );

  // Proves the stored root secret still has every privilege leases need (docs/PROTOCOL.md §5.1).
  app.post<NameParams>(
    '/v1/admin/backends/:name/check',
    { schema: { params: nameParams, response: { 200: backendSchema, ...upstreamErrorResponses } } },
    async (request) => backendView(await backends.check(request.params.name, callerOf(request).id)),
  );

  app.delete<NameParams>(
    '/v1/admin/backends/:name',
    {
      schema: {
        params: nameParams,
        response: { 200: { type: 'object', required: ['name', 'removed'], properties: { name: { type: 'string' }, removed: { type: 'boolean' } } }, ...upstreamErrorResponses },
      },
    },
    async (request) => {
      await backends.remove(request.params.name, callerOf(request).id);
      return { name: request.params.name, removed: true };
    },
  );
}
