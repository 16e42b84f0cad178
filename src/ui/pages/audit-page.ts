import type { AuditQuery } from '../../review/audit-filter.js';
import type { ChainStatus } from '../../review/chain-status.js';
import type { ReviewEvent } from '../../review/reader.js';
import { chainPanel } from '../chain-panel.js';
import { section } from '../components.js';
import { auditFilterForm } from '../filter-form.js';
import { type Html, href, html } from '../html.js';
import { eventTable } from '../tables.js';

export interface AuditPageData {
  readonly chain: ChainStatus;
  readonly query: AuditQuery;
  /** null when the filters were invalid (see `error`) */
  readonly events: readonly ReviewEvent[] | null;
  readonly error?: string;
  readonly limit: number;
}

/** The next page continues after (ascending) or before (descending) the last seq shown. */
function pager(data: AuditPageData): Html {
  const last = data.events?.at(-1);
  if (!last || data.events!.length < data.limit) return html``;
  const { after: _after, before: _before, ...filters } = data.query;
  const cursor = data.query.order === 'asc' ? { after: last.seq } : { before: last.seq };
  return html`<div class="pager"><a href="${href('/ui/audit', { ...filters, ...cursor })}">${data.query.order === 'asc' ? 'Newer events →' : 'Older events →'}</a></div>`;
}

export function auditPage(data: AuditPageData): Html {
  const events = data.events === null ? html`<p class="error">${data.error ?? 'Invalid filters.'}</p>` : html`${eventTable(data.events, 'No events match these filters.')}${pager(data)}`;
  return html`
    ${chainPanel(data.chain)}
    ${section('filters', 'Filters', auditFilterForm(data.query), html`The same filters as <code>tessera audit list</code>.`)}
    ${section('events', 'Events', events)}
  `;
}
