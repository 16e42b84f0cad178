import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BACKEND_TYPES, type BackendType } from '../../backends/registry.js';
import type { BackendInfo, BackendService } from '../../leases/backend-service.js';
import { toIso } from '../../leases/lease.js';
import { callerOf } from '../plugins/proof-auth.js';
import { BackendList, BackendName, BackendNameParams, BackendRemoved, BackendView, StringEnum, upstreamErrorResponses } from '@tessera-broker/sdk/wire';

type NameParams = { Params: BackendNameParams };

const backendView = (backend: BackendInfo) => ({ name: backend.name, type: backend.type, roles: backend.roles, created_at: toIso(backend.createdAt) });

/** Credential backends and their sealed root secrets (admin). */
export async function adminBackendRoutes(app: FastifyInstance, { backends }: { backends: BackendService }): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: { name: string; type: BackendType } & Record<string, unknown> }>(
    '/v1/admin/backends',
    {
      schema: {
        // The type-specific fields (e.g. connection_url, roles) are validated by the backend registry.
        body: Type.Object({ name: BackendName, type: StringEnum(BACKEND_TYPES) }),
        response: { 201: BackendView, ...upstreamErrorResponses },
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
        response: { 200: BackendList, ...upstreamErrorResponses },
      },
    },
    async () => ({ backends: (await backends.list()).map(backendView) }),
  );

  app.get<NameParams>(
    '/v1/admin/backends/:name',
    { schema: { params: BackendNameParams, response: { 200: BackendView, ...upstreamErrorResponses } } },
    async (request) => backendView(await backends.get(request.params.name)),
  );

  // Proves the stored root secret still has every privilege leases need (docs/PROTOCOL.md §5.1).
  app.post<NameParams>(
    '/v1/admin/backends/:name/check',
    { schema: { params: BackendNameParams, response: { 200: BackendView, ...upstreamErrorResponses } } },
    async (request) => backendView(await backends.check(request.params.name, callerOf(request).id)),
  );

  app.delete<NameParams>(
    '/v1/admin/backends/:name',
    {
      schema: {
        params: BackendNameParams,
        response: { 200: BackendRemoved, ...upstreamErrorResponses },
      },
    },
    async (request) => {
      await backends.remove(request.params.name, callerOf(request).id);
      return { name: request.params.name, removed: true };
    },
  );
}
