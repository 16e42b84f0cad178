import { TesseraError } from '../errors.js';
import type { Grant } from '../leases/grant-service.js';
import type { Delegation } from '../store/repositories/delegations.js';

/** A claim matches `expected` if it equals it as text, or is a list (e.g. `groups`) containing it. */
export function claimMatches(claim: unknown, expected: string): boolean {
  if (Array.isArray(claim)) return claim.some((item) => claimMatches(item, expected));
  return (typeof claim === 'string' || typeof claim === 'number' || typeof claim === 'boolean') && String(claim) === expected;
}

const requiredOf = (grant: Grant) => Object.entries(JSON.parse(grant.required_user_claims) as Record<string, string>);

/**
 * Why `grant` cannot be used by a chain rooted at `root` (undefined: no chain, a direct lease), or
 * undefined if it can: a grant with required user claims is usable only through a chain whose root
 * is a user whose verified token carried every one of them. Checked on every use, like the chain.
 */
export function userClaimRefusal(grant: Grant, root: Pick<Delegation, 'delegatorUser'> | undefined): TesseraError | undefined {
  const required = requiredOf(grant);
  if (required.length === 0) return undefined;
  const wanted = required.map(([name, value]) => `${name}=${value}`).join(', ');
  const user = root?.delegatorUser;
  if (!user) return new TesseraError('user_claim_required', `Grant ${grant.id} allows ${grant.backend}/${grant.role} only when acting for a user with ${wanted}; this request acts for no user.`);
  const missing = required.find(([name, value]) => !claimMatches(user.claims[name], value));
  if (missing) return new TesseraError('user_claim_required', `Grant ${grant.id} requires a user with ${missing[0]}=${missing[1]}; user ${user.sub} of ${user.iss} does not have it.`);
  return undefined;
}
