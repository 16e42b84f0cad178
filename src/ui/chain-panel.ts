import type { ChainStatus } from '../review/chain-status.js';
import { badge, when } from './components.js';
import { type Html, html } from './html.js';

/** The audit chain's verification status, as checked server-side for this page. */
export function chainPanel(status: ChainStatus): Html {
  const verdict = status.ok
    ? badge('chain verified', 'ok')
    : badge(`chain broken at seq ${status.problem!.seq}`, 'bad');
  const checkpoint = status.last_checkpoint
    ? html`last signed checkpoint at seq <strong>${status.last_checkpoint.seq}</strong> (${when(status.last_checkpoint.at)})`
    : html`no signed checkpoint yet`;
  return html`<section id="verification" class="${`panel ${status.ok ? 'panel-ok' : 'panel-bad'}`}">
    <div class="panel-head"><h2>Audit log integrity</h2>${verdict}</div>
    <p>Verified seq <strong>${status.from}</strong>–<strong>${status.to}</strong> of ${status.head.seq}: ${status.events} events,
      ${status.proofs} stored agent proofs and ${status.checkpoints} checkpoint signatures checked; ${checkpoint}. Checked ${when(status.checked_at)}.</p>
    ${status.problem ? html`<p class="problem"><strong>${status.problem.code}</strong>: ${status.problem.message}</p>` : ''}
    <p class="note">Chain head <span class="mono">${status.head.hash.slice(0, 16)}…</span>. For the whole log, run <code>tessera audit verify</code>.</p>
  </section>`;
}
