import type { Identity } from '../identity/identity.js';
import type { Delegation } from '../store/repositories/delegations.js';

/**
 * A delegation chain in the shape of RFC 8693's nested `act` claim (docs/PROTOCOL.md §12.4): `sub`
 * is whoever the chain acts for (the user, or the agent at the root), the outermost `act` the
 * current actor (the lease holder), each nested `act` the actor before it. Members are in canonical
 * (sorted) order, as audit details want them.
 */
export interface ActClaim {
  readonly act?: ActClaim;
  /** a user's issuer; agents are named by address alone */
  readonly iss?: string;
  readonly sub: string;
}

/** `chain` root first; every identity it names must be in `identities`. */
export function actChain(chain: readonly Delegation[], identities: ReadonlyMap<string, Identity>): ActClaim {
  const root = chain[0]!;
  const addressOf = (id: string) => identities.get(id)?.address ?? id;
  let act: ActClaim | undefined;
  for (const link of chain) act = { ...(act && { act }), sub: addressOf(link.delegateeIdentityId) };
  const subject = root.delegatorUser ? { iss: root.delegatorUser.iss, sub: root.delegatorUser.sub } : { sub: addressOf(root.delegatorIdentityId!) };
  return { act: act!, ...subject };
}

/** Whom the chain acts for: `tessera audit list --on-behalf-of` matches it. */
export const onBehalfOf = (claim: ActClaim): string => claim.sub;
