import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { isTesseraError, TesseraError } from '../../errors.js';
import { AUDIT_QUERY_KEYS, type AuditQuery, DEFAULT_AUDIT_LIMIT } from '../../review/audit-filter.js';
import type { ReviewReader } from '../../review/reader.js';
import type { ReviewSessions } from '../../review/sessions.js';
import type { Html } from '../../ui/html.js';
import { layout, STYLESHEET_PATH } from '../../ui/layout.js';
import { auditPage } from '../../ui/pages/audit-page.js';
import { identityPage } from '../../ui/pages/identity-page.js';
import { errorPage, signInPage } from '../../ui/pages/message-page.js';
import { overviewPage } from '../../ui/pages/overview-page.js';
import { STYLESHEET } from '../../ui/style.js';
import type { SessionCookie } from '../session-cookie.js';

export interface UiRouteOptions {
  readonly reader: ReviewReader;
  readonly sessions: ReviewSessions;
  readonly cookie: SessionCookie;
}

/** No scripts at all, styles only from our stylesheet, nothing framed, forms only to ourselves. */
export const UI_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Most recent revocations and denials shown on the overview. */
const OVERVIEW_EVENTS = 50;

const sendPage = (reply: FastifyReply, status: number, page: Html) => reply.status(status).type('text/html; charset=utf-8').send(page.value);

/** Only the known filter keys, as strings: the form's fields and the page links. */
function auditQueryOf(raw: Record<string, unknown>): AuditQuery {
  return Object.fromEntries(AUDIT_QUERY_KEYS.filter((key) => typeof raw[key] === 'string').map((key) => [key, raw[key] as string]));
}

/**
 * The read-only review page at /ui: server-rendered HTML over the same reader as the review API,
 * behind a review session cookie. It only has GET routes; the login link is the one way in.
 */
export async function uiRoutes(app: FastifyInstance, { reader, sessions, cookie }: UiRouteOptions): Promise<void> {
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', UI_CSP);
    reply.header('cache-control', 'no-store');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
  });

  // Failures render as pages, not JSON: a missing or dead session shows how to sign in.
  app.setErrorHandler((error: FastifyError | TesseraError, request, reply) => {
    if (isTesseraError(error, 'session_invalid')) return sendPage(reply, 401, layout('Sign in', null, signInPage(error.message)));
    if (error instanceof TesseraError && error.status < 500) return sendPage(reply, error.status, layout('Not available', request.reviewSession, errorPage(error.message)));
    request.log.error({ err: error }, 'review page failed');
    return sendPage(reply, 500, layout('Error', request.reviewSession, errorPage('Internal error.')));
  });

  app.get(STYLESHEET_PATH, async (_request, reply) => reply.type('text/css; charset=utf-8').send(STYLESHEET));

  app.get<{ Querystring: { code?: string } }>('/ui/login', async (request, reply) => {
    const session = await sessions.login(request.query.code ?? '', request.ip);
    return reply.header('set-cookie', cookie.serialize(session.token, sessions.policy.sessionTtlMs / 1000)).redirect('/ui', 303);
  });

  app.register(async (pages) => {
    pages.addHook('preValidation', pages.reviewAuth.session);

    pages.get('/ui', async (request, reply) => {
      const [chain, identities, activeLeases, revoked, retrying, revocations, denials] = await Promise.all([
        reader.chainStatus(),
        reader.identities(),
        reader.leases({ state: 'active' }),
        reader.leases({ state: 'revoked' }),
        reader.leases({ state: 'revocation-pending' }),
        reader.audit({ action: 'identity.revoked', order: 'desc', limit: OVERVIEW_EVENTS }),
        reader.audit({ outcome: 'denied', order: 'desc', limit: OVERVIEW_EVENTS }),
      ]);
      const page = overviewPage({ chain, identities, activeLeases, revokedLeases: [...retrying, ...revoked], revocations, denials });
      return sendPage(reply, 200, layout('Overview', request.reviewSession, page));
    });

    pages.get('/ui/audit', async (request, reply) => {
      const query: AuditQuery = { order: 'desc', ...auditQueryOf(request.query as Record<string, unknown>) };
      const [chain, result] = await Promise.all([
        reader.chainStatus(),
        reader.audit(query).then(
          (events) => ({ events }),
          (error: unknown) => {
            if (!isTesseraError(error, 'invalid_request')) throw error;
            return { events: null, error: error.message };
          },
        ),
      ]);
      const limit = Number(query.limit ?? DEFAULT_AUDIT_LIMIT);
      return sendPage(reply, result.events === null ? 400 : 200, layout('Audit log', request.reviewSession, auditPage({ chain, query, limit, ...result })));
    });

    pages.get<{ Params: { address: string } }>('/ui/identities/:address', async (request, reply) => {
      const timeline = await reader.timeline(request.params.address);
      return sendPage(reply, 200, layout(timeline.identity.address, request.reviewSession, identityPage(timeline)));
    });
  });
}
