import { AsyncLocalStorage } from 'node:async_hooks';

/** The verified proof of the request being served, and who signed it. */
export interface RequestProof {
  readonly identityId: string;
  /** the compact JWS from `Authorization: Proof <jws>` */
  readonly proof: string;
}

/**
 * Request-scoped so that every audit event an authenticated request causes keeps that request's
 * proof, however deep in a service (and inside whichever transaction) it is appended: services
 * need not thread it through. The proof-auth plugin runs the rest of the request inside it.
 */
const current = new AsyncLocalStorage<RequestProof>();

export function runWithRequestProof<T>(proof: RequestProof, work: () => T): T {
  return current.run(proof, work);
}

/** The proof to store with an event by `actor`: only the actor's own signature attests the actor. */
export function requestProofFor(actor: string | null): string | null {
  const scoped = current.getStore();
  return scoped !== undefined && scoped.identityId === actor ? scoped.proof : null;
}
