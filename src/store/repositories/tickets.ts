import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** A one-time enrollment ticket, stored as its hash only. */
export interface EnrollmentTicket {
  readonly ticketHash: string;
  readonly identityId: string;
  readonly issuedAt: number;
  readonly issuedBy: string;
  readonly expiresAt: number;
  readonly redeemedAt: number | null;
}

export interface TicketRepository {
  insert(ticket: Omit<EnrollmentTicket, 'redeemedAt'>): Promise<void>;
  find(ticketHash: string): Promise<EnrollmentTicket | undefined>;
  /**
   * Marks the ticket redeemed if it belongs to `identityId`, is unredeemed and unexpired at `now`;
   * whether it did. A conditional UPDATE: of two racing redemptions exactly one gets true.
   */
  redeem(ticketHash: string, identityId: string, now: number): Promise<boolean>;
}

export class SqlTicketRepository implements TicketRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(ticket: Omit<EnrollmentTicket, 'redeemedAt'>): Promise<void> {
    await this.db
      .insertInto('enrollment_tickets')
      .values({ ticket_hash: ticket.ticketHash, identity_id: ticket.identityId, issued_at: ticket.issuedAt, issued_by: ticket.issuedBy, expires_at: ticket.expiresAt, redeemed_at: null })
      .execute();
  }

  async find(ticketHash: string): Promise<EnrollmentTicket | undefined> {
    const row = await this.db.selectFrom('enrollment_tickets').selectAll().where('ticket_hash', '=', ticketHash).executeTakeFirst();
    return (
      row && { ticketHash: row.ticket_hash, identityId: row.identity_id, issuedAt: row.issued_at, issuedBy: row.issued_by, expiresAt: row.expires_at, redeemedAt: row.redeemed_at }
    );
  }

  async redeem(ticketHash: string, identityId: string, now: number): Promise<boolean> {
    const claimed = await this.db
      .updateTable('enrollment_tickets')
      .set({ redeemed_at: now })
      .where('ticket_hash', '=', ticketHash)
      .where('identity_id', '=', identityId)
      .where('redeemed_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return claimed.numUpdatedRows === 1n;
  }
}
