import { AUDIT_OUTCOMES, type AuditQuery } from '../review/audit-filter.js';
import { type Html, html } from './html.js';

/** Known actions, offered as suggestions; any action can be typed. */
const ACTIONS = [
  'identity.registered', 'ticket.issued', 'ticket.redeemed', 'ticket.rejected', 'identity.enrolled', 'identity.revoked',
  'proof.rejected', 'request.forbidden', 'request.rejected.summary', 'lease.granted', 'lease.denied', 'lease.renewed', 'lease.revoked', 'lease.expired',
  'lease.revocation_failed', 'backend.added', 'backend.removed', 'grant.created', 'grant.revoked', 'audit.exported',
  'review.session_created', 'review.login', 'issuer.trusted', 'issuer.removed',
];

const textField = (name: keyof AuditQuery, label: string, query: AuditQuery, placeholder = '', list?: string): Html =>
  html`<label>${label}<input type="text" name="${name}" value="${query[name] ?? ''}" placeholder="${placeholder}"${list ? html` list="${list}"` : ''}></label>`;

function select(name: keyof AuditQuery, label: string, query: AuditQuery, options: readonly (readonly [string, string])[]): Html {
  const current = String(query[name] ?? '');
  return html`<label>${label}<select name="${name}">${options.map(([value, text]) => html`<option value="${value}"${value === current ? html` selected` : ''}>${text}</option>`)}</select></label>`;
}

/** The same filters as `tessera audit list` and GET /v1/review/audit, submitted as a plain GET form. */
export function auditFilterForm(query: AuditQuery): Html {
  return html`<form class="filters" method="get" action="/ui/audit">
    ${textField('identity', 'Identity', query, 'address or id')}
    ${textField('lease', 'Lease', query, 'lse_…')}
    ${textField('backend', 'Backend', query)}
    ${textField('on_behalf_of', 'Acting for', query, "a user's sub")}
    ${textField('action', 'Action', query, 'e.g. lease.denied', 'actions')}
    ${select('outcome', 'Outcome', query, [['', 'any'], ...AUDIT_OUTCOMES.map((outcome) => [outcome, outcome] as const)])}
    ${textField('since', 'Since', query, '2026-01-31T00:00:00Z')}
    ${textField('until', 'Until', query, '2026-01-31T23:59:59Z')}
    ${select('order', 'Order', query, [['desc', 'newest first'], ['asc', 'oldest first']])}
    <datalist id="actions">${ACTIONS.map((action) => html`<option value="${action}"></option>`)}</datalist>
    <div class="actions"><button type="submit">Apply filters</button><a href="/ui/audit">Clear</a></div>
  </form>`;
}
