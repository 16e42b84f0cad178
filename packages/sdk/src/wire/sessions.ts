import { type Static, Type } from '@sinclair/typebox';

/** `POST /v1/sessions`: a session certificate signed by the identity's primary key (docs/PROTOCOL.md §3.1). */
export const SessionRequest = Type.Object({ certificate: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false });
export type SessionRequest = Static<typeof SessionRequest>;

export const SessionResponse = Type.Object({
  /** `ses_...`: the `kid` of the proofs the session key signs */
  session_id: Type.String(),
  generation: Type.Integer(),
  issued_at: Type.String(),
  expires_at: Type.String(),
});
export type SessionResponse = Static<typeof SessionResponse>;
