import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { verifyEd25519 } from '../crypto/ed25519.js';
import { base64url } from '../crypto/encoding.js';
import { isSessionId, parseProofHeader, PROOF_MAX_SKEW_SECONDS, PROOF_SCHEME, type ProofClaims } from '../identity/proof.js';
import { verifySessionCertificate } from '../sessions/certificate.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { delegationEvidenceProblem, type DelegationEventDetails } from '../delegations/evidence.js';
import { canonicalJson } from './canonical.js';
import { eventHashWithDetails, GENESIS_HASH, type HashedEvent, STORED_DETAILS, type WithStoredDetails } from './chain.js';
import { CHECKPOINT_TYPE, type StoredCheckpoint } from './checkpoints.js';
import type { ExportRecord, HeaderRecord, SessionRecord } from './records.js';

export type ProblemCode =
  | 'export_malformed'
  | 'seq_gap'
  | 'hash_mismatch'
  | 'broken_link'
  | 'beyond_head'
  | 'truncated'
  | 'checkpoint_bad_signature'
  | 'checkpoint_altered'
  | 'checkpoint_mismatch'
  | 'proof_malformed'
  | 'proof_wrong_actor'
  | 'proof_unknown_identity'
  | 'proof_bad_signature'
  | 'proof_key_not_introduced'
  | 'key_rotation_invalid'
  | 'proof_out_of_time'
  | 'session_unknown'
  | 'session_certificate_invalid'
  | 'delegation_evidence';

export interface VerifyProblem {
  /** the first sequence number found bad */
  readonly seq: number;
  readonly code: ProblemCode;
  readonly message: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly from: number;
  readonly to: number;
  readonly events: number;
  readonly checkpoints: number;
  readonly proofs: number;
  /** delegations whose delegator's signed request was checked against the recorded scope */
  readonly delegations: number;
  /** seq of the last checkpoint that matched */
  readonly lastCheckpoint: number | null;
  readonly problem: VerifyProblem | null;
}

/**
 * A record source may also offer its records a page at a time under this key (exportRecords() does):
 * the verifier then takes whole pages, with no promise per record. It must be the same records in
 * the same order, and a source is read one way or the other, not both.
 */
export const RECORD_PAGES: unique symbol = Symbol('tessera.audit.recordPages');

export interface PagedRecords {
  [RECORD_PAGES](): AsyncIterable<readonly ExportRecord[]>;
}

export interface VerifyOptions {
  /** Keys to check checkpoints against; default the export's own copy (only as trustworthy as the file). */
  readonly jwks?: JSONWebKeySet;
}

const VERIFIED_PROOFS_KEPT = 256;

const DELEGATION_CREATED = 'delegation.created';

/** The event that adds a key to an identity (src/identity/identities.ts, rotateKey). */
const KEY_ROTATED = 'identity.key_rotated';

/** A proof is taken at most this long before its event: the broker's skew window plus a slow operation. */
const PROOF_TO_EVENT_MS = (PROOF_MAX_SKEW_SECONDS + 300) * 1000;

class Failure extends Error {
  constructor(readonly problem: VerifyProblem) {
    super(problem.message);
  }
}

const fail = (seq: number, code: ProblemCode, message: string) => new Failure({ seq, code, message });

/**
 * Recomputes the hash chain of an export (docs/PROTOCOL.md §7.5) and checks every checkpoint
 * signature and stored proof, stopping at the first bad sequence number. Holds one event at a time
 * (plus the identity keys), so it verifies logs of any length in flat memory.
 */
export async function verifyAuditLog(records: AsyncIterable<ExportRecord>, options: VerifyOptions = {}): Promise<VerifyReport> {
  const state = new ChainVerifier(options);
  try {
    const pages = (records as Partial<PagedRecords>)[RECORD_PAGES];
    if (pages) {
      for await (const page of pages.call(records)) {
        for (const record of page) {
          const pending = state.accept(record);
          if (pending) await pending;
        }
      }
    } else {
      for await (const record of records) {
        // Events (nearly every record) are checked synchronously: no promise per event.
        const pending = state.accept(record);
        if (pending) await pending;
      }
    }
    state.finish();
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    return state.report(error.problem);
  }
  return state.report(null);
}

interface IdentityKeyEntry {
  readonly identityId: string;
  readonly key: Uint8Array;
}

class ChainVerifier {
  private header: HeaderRecord | undefined;
  private jwks: ReturnType<typeof createLocalJWKSet> | undefined;
  /** key id (thumbprint) -> the identity the export's identity records give it and the key */
  private readonly identityKeys = new Map<string, IdentityKeyEntry>();
  /** keys the chain itself added to an identity so far: identity.key_rotated events verified before the current one */
  private readonly rotatedIn = new Map<string, IdentityKeyEntry>();
  /**
   * A range starting after seq 1 cannot show rotations before it: a rotated-in key not introduced
   * yet is taken from the identity records, remembering its first proof's seq, which is the bad
   * one if the range later introduces that key.
   */
  private readonly assumedBeforeRange = new Map<string, number>();
  /** session id -> the key its certificate binds, or why the certificate is no good (reported at the first proof naming it) */
  private readonly sessionKeys = new Map<string, { identityId: string; keyId: string; publicKey: Uint8Array; iat: number; exp: number } | { invalid: string }>();
  /** recently verified stored proofs (bounded) */
  private readonly verifiedProofs = new Set<string>();
  private last: HashedEvent | undefined;
  private events = 0;
  private checkpoints = 0;
  private proofs = 0;
  private delegations = 0;
  private lastCheckpoint: number | null = null;
  /** whether the last stored details text seen was canonical (see hashMatches) */
  private storedIsCanonical = true;
  /** a checkpoint for a seq the log has not reached */
  private unmatched: StoredCheckpoint | undefined;

  constructor(private readonly options: VerifyOptions) {}

  accept(record: ExportRecord): Promise<void> | void {
    if (record.type === 'event' && this.header) return this.checkEvent(record, this.header);
    if (record.type === 'header') return this.start(record);
    if (!this.header) throw fail(0, 'export_malformed', 'The export does not start with its header.');
    if (record.type === 'identity') return this.addIdentity(record.identity_id, record.public_key);
    if (record.type === 'session') return this.addSession(record);
    if (record.type === 'event') return this.checkEvent(record, this.header);
    if (record.type === 'checkpoint') return this.checkCheckpoint(record, this.header);
    throw fail(this.expectedSeq(), 'export_malformed', `Unknown record type ${JSON.stringify((record as { type: unknown }).type)}.`);
  }

  finish(): void {
    const header = this.header;
    if (!header) throw fail(0, 'export_malformed', 'The export has no header.');
    const lastSeq = this.last?.seq ?? header.from - 1;
    if (this.unmatched) {
      throw fail(lastSeq + 1, 'truncated', `The log ends at seq ${lastSeq}, but a checkpoint signs seq ${this.unmatched.seq}: the tail was cut.`);
    }
    if (lastSeq < header.to) {
      throw fail(lastSeq + 1, 'truncated', `The log ends at seq ${lastSeq}; seq ${lastSeq + 1} to ${header.to} are missing.`);
    }
    if (header.to >= header.head.seq && this.last && this.last.hash !== header.head.hash) {
      throw fail(this.last.seq, 'hash_mismatch', `The last event's hash is not the chain head's (seq ${header.head.seq}).`);
    }
  }

  report(problem: VerifyProblem | null): VerifyReport {
    return {
      ok: problem === null,
      from: this.header?.from ?? 0,
      to: this.header?.to ?? 0,
      events: this.events,
      checkpoints: this.checkpoints,
      proofs: this.proofs,
      delegations: this.delegations,
      lastCheckpoint: this.lastCheckpoint,
      problem,
    };
  }

  private start(header: HeaderRecord): void {
    if (this.header) throw fail(this.expectedSeq(), 'export_malformed', 'A second header in the export.');
    this.header = header;
    this.jwks = createLocalJWKSet(this.options.jwks ?? header.jwks);
  }

  private expectedSeq(): number {
    return (this.last?.seq ?? (this.header?.from ?? 1) - 1) + 1;
  }

  /**
   * Keys are indexed by their thumbprint, the kid of the proofs they sign. An identity's first key
   * hashes to the identity id: it certifies itself. A rotated-in key does not, and its record is
   * only as trustworthy as the file: its proofs count only once the chain's own identity.key_rotated
   * event has introduced it (primaryKey). A first key claimed for another identity is ignored.
   */
  private async addIdentity(identityId: string, publicKey: string): Promise<void> {
    const key = base64url.decode(publicKey);
    if (key.length !== 32) return;
    const keyId = await keyThumbprint(key);
    const owner = this.identityKeys.get(keyId);
    if (owner !== undefined && owner.identityId === keyId) return;
    this.identityKeys.set(keyId, { identityId, key });
  }

  /**
   * A session certificate is checked once, against its identity's key (identity records come first):
   * only a certificate the primary key signed, naming this session's key, makes its proofs count.
   */
  private async addSession(record: SessionRecord): Promise<void> {
    try {
      const verified = await verifySessionCertificate(record.certificate, (keyId) => {
        const owner = this.identityKeys.get(keyId);
        return owner?.identityId === record.identity_id ? owner.key : undefined;
      });
      if (verified.sessionId !== record.session_id) throw new Error(`it certifies session ${verified.sessionId}`);
      this.sessionKeys.set(record.session_id, { identityId: record.identity_id, keyId: verified.keyId, publicKey: verified.publicKey, iat: verified.iat, exp: verified.exp });
    } catch (error) {
      this.sessionKeys.set(record.session_id, { invalid: (error as Error).message });
    }
  }

  /** The key a stored proof must verify under: the actor's own, or a session key the actor's certificate binds. */
  private signingKey(event: HashedEvent, kid: string, iss: string, iat: number): Uint8Array {
    if (!isSessionId(kid)) return this.primaryKey(event, kid, 'the stored proof is signed by');
    const session = this.sessionKeys.get(kid);
    if (!session) throw fail(event.seq, 'session_unknown', `seq ${event.seq}: the stored proof names session ${kid}, whose certificate is not in the log.`);
    if ('invalid' in session) throw fail(event.seq, 'session_certificate_invalid', `seq ${event.seq}: the certificate of session ${kid} does not hold: ${session.invalid}`);
    if (session.identityId !== event.actor || iss !== session.keyId) {
      throw fail(event.seq, 'proof_wrong_actor', `seq ${event.seq}: the stored proof is signed by a session of ${session.identityId}, not of the actor.`);
    }
    // The key that certified the session must be the actor's by then, as for its own proofs.
    this.primaryKey(event, session.keyId, `the stored proof's session ${kid} is certified by`);
    // The broker accepts a session's proofs while it lives, and iat within the proof skew of its clock.
    if (iat < session.iat - PROOF_MAX_SKEW_SECONDS || iat > session.exp + PROOF_MAX_SKEW_SECONDS) {
      throw fail(event.seq, 'proof_out_of_time', `seq ${event.seq}: the stored proof was signed at ${iat}, outside its session (${session.iat} to ${session.exp}).`);
    }
    return session.publicKey;
  }

  /**
   * The actor's key `kid`, as the chain has it at `event`: its first key (its id is the key's
   * thumbprint), or a key an identity.key_rotated event earlier in the chain added to it. A key only
   * the export's identity records give the actor is refused: anyone who can write the file or the
   * database could add one.
   */
  private primaryKey(event: HashedEvent, kid: string, signedBy: string): Uint8Array {
    const wrongActor = () => fail(event.seq, 'proof_wrong_actor', `seq ${event.seq}: ${signedBy} ${kid}, not by the actor.`);
    if (kid === event.actor) {
      const first = this.identityKeys.get(kid);
      if (first?.identityId !== kid) throw fail(event.seq, 'proof_unknown_identity', `seq ${event.seq}: no public key for identity ${kid}.`);
      return first.key;
    }
    const introduced = this.rotatedIn.get(kid);
    if (introduced !== undefined) {
      if (introduced.identityId !== event.actor) throw wrongActor();
      return introduced.key;
    }
    const listed = this.identityKeys.get(kid);
    if (listed === undefined || listed.identityId !== event.actor) throw wrongActor();
    if (this.header!.from > 1) {
      if (!this.assumedBeforeRange.has(kid)) this.assumedBeforeRange.set(kid, event.seq);
      return listed.key;
    }
    throw fail(
      event.seq,
      'proof_key_not_introduced',
      `seq ${event.seq}: ${signedBy} ${kid}, which the export lists for identity ${event.actor} but no identity.key_rotated event before seq ${event.seq} introduced.`,
    );
  }

  /** An identity.key_rotated event adds its key to the identity from the next event on (primaryKey). */
  private async introduceKey(event: HashedEvent): Promise<void> {
    const { key_id: keyId, public_key: publicKey } = event.details as { key_id?: unknown; public_key?: unknown };
    const key = typeof publicKey === 'string' ? base64url.decode(publicKey) : undefined;
    if (event.identity_id === null || typeof keyId !== 'string' || key?.length !== 32 || (await keyThumbprint(key)) !== keyId || this.rotatedIn.has(keyId) || keyId === event.identity_id) {
      throw fail(event.seq, 'key_rotation_invalid', `seq ${event.seq}: the identity.key_rotated event does not name a new Ed25519 key by its thumbprint.`);
    }
    const used = this.assumedBeforeRange.get(keyId);
    if (used !== undefined) {
      throw fail(used, 'proof_key_not_introduced', `seq ${used}: the stored proof relies on key ${keyId}, which identity.key_rotated introduces only at seq ${event.seq}.`);
    }
    this.rotatedIn.set(keyId, { identityId: event.identity_id, key });
  }

  private checkEvent(event: HashedEvent, header: HeaderRecord): Promise<void> | void {
    const expected = this.expectedSeq();
    if (event.seq !== expected || this.unmatched) {
      throw fail(expected, 'seq_gap', event.seq > expected || this.unmatched ? `seq ${expected} is missing (the next event is ${event.seq}).` : `seq ${event.seq} appears after seq ${expected - 1}: events are out of order or duplicated.`);
    }
    if (event.seq > header.head.seq) {
      throw fail(event.seq, 'beyond_head', `seq ${event.seq} is past the chain head (seq ${header.head.seq}): it was added outside the broker.`);
    }
    if (!this.hashMatches(event)) throw fail(event.seq, 'hash_mismatch', `seq ${event.seq} does not match its hash: its content was changed.`);
    const prevHash = this.last?.hash ?? (event.seq === 1 ? GENESIS_HASH : undefined);
    if (prevHash !== undefined && event.prev_hash !== prevHash) {
      throw fail(event.seq, 'broken_link', `seq ${event.seq} does not link to seq ${event.seq - 1}: one of them was replaced or re-hashed.`);
    }
    const claims = event.proof === null ? null : this.checkProof(event, event.proof);
    if (event.action === DELEGATION_CREATED) this.checkDelegation(event, claims);
    this.last = event;
    this.events += 1;
    // Rare: the only events that cost a promise.
    if (event.action === KEY_ROTATED && event.outcome === 'success') return this.introduceKey(event);
  }

  /**
   * Does the event's content match its hash? Events read from the database carry the stored text of
   * `details`, which the sink writes in canonical form: hashing that text as is skips a parse and a
   * re-encoding per event. A match proves the text is the canonical encoding that was hashed (SHA-256
   * is collision resistant), so the result is the same as with the general path, which runs when the
   * text does not match as stored: older brokers stored details non-canonically, and a tampered row
   * may be any JSON. After such a text the general path goes first, until a canonical one shows up.
   */
  private hashMatches(event: HashedEvent & WithStoredDetails): boolean {
    const stored = event[STORED_DETAILS];
    if (stored !== undefined && this.storedIsCanonical) {
      if (eventHashWithDetails(event, stored) === event.hash) return true;
    }
    const canonical = canonicalJson(event.details);
    if (stored === undefined) return eventHashWithDetails(event, canonical) === event.hash;
    const alreadyHashed = this.storedIsCanonical;
    this.storedIsCanonical = canonical === stored;
    if (this.storedIsCanonical && alreadyHashed) return false; // the same bytes just failed
    return eventHashWithDetails(event, canonical) === event.hash;
  }

  /**
   * An agent's delegation must carry its delegator's signed request for exactly what was recorded
   * (src/delegations/evidence.ts); a user's root (no delegator identity) is evidenced otherwise.
   */
  private checkDelegation(event: HashedEvent, claims: ProofClaims | null): void {
    const details = event.details as DelegationEventDetails & { delegator_identity_id?: unknown };
    if (details.delegator_identity_id === null || details.delegator_identity_id === undefined) return;
    if (claims === null || event.actor !== details.delegator_identity_id) {
      throw fail(event.seq, 'delegation_evidence', `seq ${event.seq}: the delegation carries no proof signed by its delegator.`);
    }
    const problem = delegationEvidenceProblem(details, claims);
    if (problem !== null) throw fail(event.seq, 'delegation_evidence', `seq ${event.seq}: the delegator's signed request does not match the recorded delegation: ${problem}.`);
    this.delegations += 1;
  }

  /** The proof must be the actor's own signature, from around the time of the event. */
  private checkProof(event: HashedEvent, proof: string): ProofClaims {
    let parsed: ReturnType<typeof parseProofHeader>;
    try {
      parsed = parseProofHeader(`${PROOF_SCHEME} ${proof}`);
    } catch {
      throw fail(event.seq, 'proof_malformed', `seq ${event.seq}: the stored proof is not a well-formed proof JWS.`);
    }
    const key = this.signingKey(event, parsed.kid, parsed.claims.iss, parsed.claims.iat);
    // A request that causes several events stores its proof on each: one signature check does for all.
    if (!this.verifiedProofs.has(proof)) {
      if (!verifyEd25519(parsed.signature, parsed.signingInput, key)) {
        throw fail(event.seq, 'proof_bad_signature', `seq ${event.seq}: the stored proof's signature does not verify under ${parsed.kid}'s key.`);
      }
      // An identity's key is fixed by its id (a thumbprint), and so is a session's: a proof that verified once always does.
      if (this.verifiedProofs.size >= VERIFIED_PROOFS_KEPT) this.verifiedProofs.clear();
      this.verifiedProofs.add(proof);
    }
    const lagMs = event.at - parsed.claims.iat * 1000;
    if (lagMs < -PROOF_MAX_SKEW_SECONDS * 1000 || lagMs > PROOF_TO_EVENT_MS) {
      throw fail(event.seq, 'proof_out_of_time', `seq ${event.seq}: the stored proof was signed at ${parsed.claims.iat}, not around the event.`);
    }
    this.proofs += 1;
    return parsed.claims;
  }

  private async checkCheckpoint(checkpoint: StoredCheckpoint, header: HeaderRecord): Promise<void> {
    if (checkpoint.seq < header.from) return;
    let payload: unknown;
    try {
      const verified = await compactVerify(checkpoint.jws, this.jwks!, { algorithms: ['EdDSA'] });
      if (verified.protectedHeader.typ !== CHECKPOINT_TYPE) throw new Error(`typ is not ${CHECKPOINT_TYPE}`);
      payload = JSON.parse(new TextDecoder().decode(verified.payload));
    } catch (error) {
      throw fail(checkpoint.seq, 'checkpoint_bad_signature', `The checkpoint at seq ${checkpoint.seq} is not signed by the broker's authority key (${(error as Error).message}).`);
    }
    const signed = payload as Partial<StoredCheckpoint>;
    if (signed.seq !== checkpoint.seq || signed.hash !== checkpoint.hash || signed.at !== checkpoint.at) {
      throw fail(checkpoint.seq, 'checkpoint_altered', `The checkpoint row at seq ${checkpoint.seq} differs from what its signature covers.`);
    }
    const lastSeq = this.last?.seq ?? header.from - 1;
    if (checkpoint.seq < lastSeq) throw fail(checkpoint.seq, 'export_malformed', `The checkpoint at seq ${checkpoint.seq} comes after seq ${lastSeq}.`);
    if (checkpoint.seq > lastSeq) {
      // Events it signs are missing: the next event shows a gap, or the log ends (a cut tail).
      this.unmatched ??= checkpoint;
      return;
    }
    if (checkpoint.hash !== this.last!.hash) {
      throw fail(checkpoint.seq, 'checkpoint_mismatch', `The chain at seq ${checkpoint.seq} is not the one the broker signed: events after seq ${this.lastCheckpoint ?? header.from - 1} were rewritten.`);
    }
    this.checkpoints += 1;
    this.lastCheckpoint = checkpoint.seq;
  }
}
