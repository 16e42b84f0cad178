import type { FastifyInstance } from 'fastify';
import { toIso } from '../../leases/lease.js';
import type { UserDelegations } from '../../trust/user-delegations.js';
import { callerOf } from '../plugins/proof-auth.js';
import { UserDelegationRequest, UserDelegationView, upstreamErrorResponses } from '@tessera-broker/sdk/wire';

/** An agent acting for a user: the user's token plus the agent's own proof (docs/PROTOCOL.md §13.3). */
export async function userDelegationRoutes(app: FastifyInstance, { userDelegations }: { userDelegations: UserDelegations }): Promise<void> {
  app.addHook('preValidation', app.proofAuth.identity);

  app.post<{ Body: UserDelegationRequest }>(
    '/v1/delegations/user',
    { schema: { body: UserDelegationRequest, response: { 201: UserDelegationView, ...upstreamErrorResponses } } },
    async (request, reply) => {
      const agent = callerOf(request);
      const { token, backend, role, constraints, ttl_seconds, purpose } = request.body;
      const { delegation, user } = await userDelegations.create(agent, { token, backend, role, ttlMs: ttl_seconds * 1000, purpose, ...(constraints && { constraints }) });
      return reply.status(201).send({
        delegation_id: delegation.id,
        acting_for: { iss: user.issuer, sub: user.subject },
        delegatee: agent.address,
        backend: delegation.backend,
        role: delegation.role,
        constraints: { ...delegation.constraints },
        purpose: delegation.purpose,
        expires_at: toIso(delegation.expiresAt),
        token_sha256: user.tokenSha256,
      });
    },
  );
}
