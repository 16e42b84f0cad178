import { type Html, href, html } from './html.js';

export type Tone = 'ok' | 'bad' | 'warn' | 'muted' | 'info';

export const badge = (text: string, tone: Tone): Html => html`<span class="badge badge-${tone}">${text}</span>`;

const TONES: Record<string, Tone> = {
  active: 'ok',
  success: 'ok',
  pending: 'warn',
  'revocation-pending': 'warn',
  failure: 'warn',
  revoked: 'bad',
  // a suspected clone: refused like a revoked identity until an admin reinstates it
  suspended: 'bad',
  denied: 'bad',
  expired: 'muted',
};

/** Identity status, lease state or event outcome, coloured by what it means for a reviewer. */
export const stateBadge = (state: string): Html => badge(state, TONES[state] ?? 'info');

/** An RFC 3339 time shown as UTC to the second; the exact value stays in the datetime attribute. */
export function when(iso: string | null): Html {
  if (iso === null) return html`<span class="none">—</span>`;
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>`;
}

export const identityLink = (address: string | null, fallback: string | null = null): Html =>
  address === null ? html`<span class="mono">${fallback ?? '—'}</span>` : html`<a href="${`/ui/identities/${encodeURIComponent(address)}`}">${address}</a>`;

export const auditLink = (text: string, query: Readonly<Record<string, string>>): Html => html`<a href="${href('/ui/audit', query)}">${text}</a>`;

export function table(headers: readonly string[], rows: readonly Html[], empty: string): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<div class="table-wrap"><table><thead><tr>${headers.map((header) => html`<th>${header}</th>`)}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

export const section = (id: string, title: string, body: Html, note?: Html | string): Html =>
  html`<section id="${id}"><h2>${title}</h2>${note === undefined ? '' : html`<p class="note">${note}</p>`}${body}</section>`;
