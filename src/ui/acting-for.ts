import { auditLink, identityLink } from './components.js';
import { type Html, html } from './html.js';

/** An event's delegation chain, from its `details.act` (RFC 8693 nested `act`, docs/PROTOCOL.md §13.5). */
export interface EventChain {
  /** whom the chain acts for: a user's sub, or the root agent's address */
  readonly sub: string;
  /** the user's issuer; absent for a chain rooted at an agent */
  readonly iss?: string;
  /** agent addresses, first actor first, the current one (the lease holder) last */
  readonly actors: readonly string[];
}

const isClaim = (value: unknown): value is { sub: string; iss?: unknown; act?: unknown } =>
  typeof value === 'object' && value !== null && typeof (value as { sub?: unknown }).sub === 'string';

/** The chain of `details.act`, or undefined when the event has none (or a malformed one). */
export function eventChain(details: Readonly<Record<string, unknown>>): EventChain | undefined {
  const act = details.act;
  if (!isClaim(act)) return undefined;
  const actors: string[] = [];
  // The outermost act is the current actor: collect outward-in, then reverse to read root first.
  for (let link: unknown = act.act; isClaim(link); link = link.act) actors.push(link.sub);
  return { sub: act.sub, ...(typeof act.iss === 'string' && { iss: act.iss }), actors: actors.reverse() };
}

/** "acting for alice (issuer)" and the chain alice → agent → sub-agent, for a lease or proxy event. */
export function actingForCell(details: Readonly<Record<string, unknown>>): Html | string {
  const chain = eventChain(details);
  if (!chain) return '';
  const root = chain.iss === undefined ? identityLink(chain.sub) : html`<strong class="user">${auditLink(chain.sub, { on_behalf_of: chain.sub })}</strong>`;
  return html`<div class="acting-for">acting for ${root}${chain.iss === undefined ? '' : html` <span class="note issuer">${chain.iss}</span>`}</div>
    <ol class="act-chain"><li>${chain.sub}</li>${chain.actors.map((actor) => html`<li>${identityLink(actor)}</li>`)}</ol>`;
}
