import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { AuditSink } from '../../audit/audit-log.js';
import { exportRecords } from '../../audit/export.js';
import { toJsonLines } from '../../audit/jsonl.js';
import { listAuditEvents } from '../../audit/query.js';
import { base64url } from '../../crypto/encoding.js';
import type { Authority } from '../../identity/authority.js';
import type { IdentityService } from '../../identity/identities.js';
import { identityView } from '../../identity/identity.js';
import type { DelegationService } from '../../delegations/delegation-service.js';
import type { LeaseService } from '../../leases/lease-service.js';
import { type AuditQuery, toAuditFilter } from '../../review/audit-filter.js';
import type { Store } from '../../store/database.js';
import { callerOf } from '../plugins/proof-auth.js';
import {
  AddressParams,
  AuditEventList,
  AuditExportQuery,
  AuditListQuery,
  errorResponses,
  IdentityList,
  IdentityListQuery,
  IdentityView,
  RegisterIdentityRequest,
  RevokeIdentityRequest,
  RevokeIdentityResponse,
  TicketRequest,
  TicketResponse,
  upstreamErrorResponses,
} from '@tessera-broker/sdk/wire';

export interface AdminRouteOptions {
  readonly identities: IdentityService;
  readonly audit: AuditSink;
  readonly store: Store;
  /** its JWKS and the issuer head audit exports, so that they verify offline */
  readonly authority: Authority;
  readonly publicUrl: string;
  readonly leases: LeaseService;
  readonly delegations: DelegationService;
}

type AddressRoute = { Params: AddressParams };

/** Platform-team operations. Every route requires an admin proof; every call is audited. */
export async function adminRoutes(app: FastifyInstance, { identities, audit, store, leases, delegations, authority, publicUrl }: AdminRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: RegisterIdentityRequest }>(
    '/v1/admin/identities',
    { schema: { body: RegisterIdentityRequest, response: { 201: IdentityView, ...errorResponses } } },
    async (request, reply) => {
      const { address, public_key, key_uri, attributes, role } = request.body;
      const identity = await identities.register(
        { address, publicKey: base64url.decode(public_key), keyUri: key_uri, attributes: attributes ?? {}, role: role ?? 'agent' },
        callerOf(request).id,
      );
      return reply.status(201).send(identityView(identity));
    },
  );

  app.get<{ Querystring: IdentityListQuery }>(
    '/v1/admin/identities',
    { schema: { querystring: IdentityListQuery, response: { 200: IdentityList, ...errorResponses } } },
    async (request) => {
      const list = await identities.list(request.query);
      await audit.append({ actor: callerOf(request).id, action: 'identity.listed', outcome: 'success', details: { ...request.query, count: list.length } });
      return { identities: list.map(identityView) };
    },
  );

  app.get<AddressRoute>(
    '/v1/admin/identities/:address',
    { schema: { params: AddressParams, response: { 200: IdentityView, ...errorResponses } } },
    async (request) => {
      const identity = await identities.getByAddress(request.params.address);
      await audit.append({ actor: callerOf(request).id, action: 'identity.viewed', outcome: 'success', identityId: identity.id });
      return identityView(identity);
    },
  );

  app.post<AddressRoute & { Body: TicketRequest }>(
    '/v1/admin/identities/:address/tickets',
    { schema: { params: AddressParams, body: TicketRequest, response: { 201: TicketResponse, ...errorResponses } } },
    async (request, reply) => {
      const { address } = request.params;
      const ttl = request.body?.ttl_seconds;
      const issued = await identities.issueTicket(address, ttl === undefined ? undefined : ttl * 1000, callerOf(request).id);
      return reply.status(201).send({ identity_id: issued.identityId, address, ticket: issued.ticket, ticket_expires_at: new Date(issued.expiresAt).toISOString() });
    },
  );

  app.post<AddressRoute & { Body: RevokeIdentityRequest }>(
    '/v1/admin/identities/:address/revoke',
    { schema: { params: AddressParams, body: RevokeIdentityRequest, response: { 200: RevokeIdentityResponse, ...upstreamErrorResponses } } },
    // The identity is revoked first, so it can start no new lease while its live ones are revoked.
    async (request) => {
      const actor = callerOf(request).id;
      const identity = await identities.revoke(request.params.address, request.body.reason, actor);
      const leaseCounts = await leases.revokeWhere({ identityId: identity.id }, { actor, reason: 'identity_revoked' });
      // Every chain the identity delegates or acts in is cut, with the leases obtained through it.
      const cut = await delegations.revokeForIdentity(identity.id, { actor, reason: 'identity_revoked' });
      return { identity: identityView(identity), leases: leaseCounts, delegations: { revoked: cut.delegations, leases: cut.leases } };
    },
  );

  app.post<AddressRoute & { Body: RevokeIdentityRequest }>(
    '/v1/admin/identities/:address/reinstate',
    { schema: { params: AddressParams, body: RevokeIdentityRequest, response: { 200: IdentityView, ...errorResponses } } },
    async (request) => identityView(await identities.reinstate(request.params.address, request.body.reason, callerOf(request).id)),
  );

  app.get<{ Querystring: AuditQuery }>(
    '/v1/admin/audit',
    { schema: { querystring: AuditListQuery, response: { 200: AuditEventList, ...errorResponses } } },
    async (request) => ({ events: await listAuditEvents(store.repos, await toAuditFilter(request.query, identities)) }),
  );

  // JSON Lines (docs/PROTOCOL.md §7.4), streamed: `tessera audit verify --file` checks it offline.
  app.get<{ Querystring: AuditExportQuery }>(
    '/v1/admin/audit/export',
    { schema: { querystring: AuditExportQuery, response: errorResponses } },
    async (request, reply) => {
      const { from, to } = request.query;
      await audit.append({ actor: callerOf(request).id, action: 'audit.exported', outcome: 'success', details: { from: from ?? null, to: to ?? null } });
      const records = exportRecords(store.repos, { issuer: publicUrl, jwks: await authority.auditJwks(), from, to, exportedAt: Date.now() });
      return reply.type('application/x-ndjson').send(Readable.from(toJsonLines(records)));
    },
  );
}
