import { hash as digest } from 'node:crypto';
import type { AuditOutcome } from './audit-log.js';
import { canonicalJson } from './canonical.js';

/** prev_hash of the first event: SHA-256 size, all zero. */
export const GENESIS_HASH = '0'.repeat(64);

/** The members of an event that its hash covers (docs/PROTOCOL.md §7), i.e. everything but the hash itself. */
export interface ChainedEvent {
  readonly seq: number;
  /** epoch milliseconds */
  readonly at: number;
  readonly actor: string | null;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly identity_id: string | null;
  readonly reason: string | null;
  readonly details: Readonly<Record<string, unknown>>;
  /** compact JWS the actor signed for the request that caused the event; null when there was none */
  readonly proof: string | null;
  readonly prev_hash: string;
}

export interface HashedEvent extends ChainedEvent {
  readonly hash: string;
}

/**
 * An event read from storage may carry the stored JSON text of its `details` under this key. The
 * sink stores that text in canonical form, so a verifier can hash it as is instead of parsing and
 * re-encoding it; it must not trust that, though (see `hashMatchesStored` in verify.ts).
 */
export const STORED_DETAILS: unique symbol = Symbol('tessera.audit.storedDetails');

export interface WithStoredDetails {
  readonly [STORED_DETAILS]?: string;
}

/** Lower-case hex SHA-256 over the UTF-8 bytes of the RFC 8785 encoding of the event's chained members. */
export function eventHash(event: ChainedEvent): string {
  return eventHashWithDetails(event, canonicalJson(event.details));
}

/**
 * eventHash() with `details` already RFC 8785-encoded: `canonicalDetails` is spliced into the
 * encoding byte for byte, so the result is the event's hash only if it is canonicalJson(details).
 */
export function eventHashWithDetails(event: Omit<ChainedEvent, 'details'>, canonicalDetails: string): string {
  // The members in canonical (sorted) order, spelled out: verification runs this per event.
  const canonical =
    `{"action":${str(event.action)},"actor":${nullableStr(event.actor)},"at":${num(event.at)}` +
    `,"details":${canonicalDetails},"identity_id":${nullableStr(event.identity_id)},"outcome":${str(event.outcome)}` +
    `,"prev_hash":${str(event.prev_hash)},"proof":${nullableStr(event.proof)},"reason":${nullableStr(event.reason)}` +
    `,"seq":${num(event.seq)}}`;
  return digest('sha256', canonical, 'hex');
}

// The member types are fixed (§8.1); anything else goes through the general encoder, which throws
// for values JSON cannot represent, exactly as canonicalJson() on the whole event would.
const str = (value: string): string => (typeof value !== 'string' ? canonicalJson(value) : NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`);
/** What JSON.stringify escapes: quote, backslash, control characters, and (lone) surrogates; ASCII ids and hashes never match. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const nullableStr = (value: string | null): string => (value === null ? 'null' : str(value));
// JSON.stringify, not String(): V8 keeps String()'s results in its number-string cache, which pushes
// them into the old generation; at a million events that is ~100 MB of garbage before a full GC.
const num = (value: number): string => (Number.isSafeInteger(value) ? JSON.stringify(value) : canonicalJson(value));

