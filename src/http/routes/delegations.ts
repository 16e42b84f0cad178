import type { FastifyInstance } from 'fastify';
import type { DelegationService } from '../../delegations/delegation-service.js';
import { delegationView } from '../../delegations/view.js';
import type { IdentityService } from '../../identity/identities.js';
import { PROOF_SCHEME } from '../../identity/proof.js';
import type { Delegation } from '../../store/repositories/delegations.js';
import { callerOf } from '../plugins/proof-auth.js';
import {
  DelegationDetail,
  DelegationIdParams,
  DelegationList,
  DelegationListQuery,
  DelegationRequest,
  DelegationView,
  errorResponses,
  RevokeDelegationRequest,
  RevokeDelegationResponse,
  upstreamErrorResponses,
} from '@tessera-broker/sdk/wire';

export interface DelegationRouteOptions {
  readonly delegations: DelegationService;
  readonly identities: IdentityService;
}

type IdRoute = { Params: DelegationIdParams };

/**
 * Delegations (docs/PROTOCOL.md §12): an agent delegates, the agents in a chain and admins read and
 * revoke it; admins list every delegation.
 */
export async function delegationRoutes(app: FastifyInstance, { delegations, identities }: DelegationRouteOptions): Promise<void> {
  const views = async (list: readonly Delegation[]) => {
    const addresses = await delegations.addresses(list);
    return list.map((delegation) => delegationView(delegation, addresses));
  };

  app.post<{ Body: DelegationRequest }>(
    '/v1/delegations',
    { preValidation: app.proofAuth.identity, schema: { body: DelegationRequest, response: { 201: DelegationView, ...errorResponses } } },
    async (request, reply) => {
      const { delegatee, backend, role, constraints, ttl_seconds, purpose, parent } = request.body;
      // The delegator's evidence: its signed proof and the exact bytes the proof's `bh` covers.
      const evidence = {
        kind: 'request-proof' as const,
        proof: request.headers.authorization!.slice(PROOF_SCHEME.length + 1),
        body: request.rawBody!.toString('utf8'),
      };
      const created = await delegations.create(
        callerOf(request),
        { delegatee, backend, role, ttlMs: ttl_seconds * 1000, purpose, ...(constraints && { constraints }), ...(parent && { parent }) },
        evidence,
      );
      const [view] = await views([created]);
      return reply.status(201).send(view);
    },
  );

  app.get(
    '/v1/delegations',
    { preValidation: app.proofAuth.identity, schema: { response: { 200: DelegationList, ...errorResponses } } },
    async (request) => {
      const caller = callerOf(request);
      const [given, received] = await Promise.all([delegations.list({ delegatorIdentityId: caller.id }), delegations.list({ delegateeIdentityId: caller.id })]);
      return { delegations: await views([...given, ...received]) };
    },
  );

  app.get<IdRoute>(
    '/v1/delegations/:id',
    { preValidation: app.proofAuth.identity, schema: { params: DelegationIdParams, response: { 200: DelegationDetail, ...errorResponses } } },
    async (request) => {
      const delegation = await delegations.visible(callerOf(request), request.params.id);
      const chain = await delegations.chainOf(delegation.id);
      const [view, ...chainViews] = await views([delegation, ...chain]);
      return { delegation: view!, chain: chainViews, evidence: delegation.evidence };
    },
  );

  app.post<IdRoute & { Body: RevokeDelegationRequest }>(
    '/v1/delegations/:id/revoke',
    { preValidation: app.proofAuth.identity, schema: { params: DelegationIdParams, body: RevokeDelegationRequest, response: { 200: RevokeDelegationResponse, ...upstreamErrorResponses } } },
    async (request) => {
      const revoked = await delegations.revoke(callerOf(request), request.params.id, request.body.reason);
      return { delegation_id: request.params.id, delegations_revoked: revoked.delegations, leases: revoked.leases };
    },
  );

  app.get<{ Querystring: DelegationListQuery }>(
    '/v1/admin/delegations',
    { preValidation: app.proofAuth.requireRole('admin'), schema: { querystring: DelegationListQuery, response: { 200: DelegationList, ...errorResponses } } },
    async (request) => {
      const { delegator, delegatee, status } = request.query;
      const idOf = async (address: string | undefined) => (address === undefined ? undefined : (await identities.getByAddress(address)).id);
      const list = await delegations.list({
        ...(status && { status }),
        ...(delegator !== undefined && { delegatorIdentityId: await idOf(delegator) }),
        ...(delegatee !== undefined && { delegateeIdentityId: await idOf(delegatee) }),
      });
      return { delegations: await views(list) };
    },
  );
}
