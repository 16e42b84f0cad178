/**
 * The review session cookie: HttpOnly (scripts cannot read it), SameSite=Strict (never sent on
 * cross-site requests), Secure with the `__Host-` prefix when the broker is served over https.
 */
export class SessionCookie {
  readonly name: string;
  private readonly secure: boolean;

  constructor(publicUrl: string) {
    this.secure = publicUrl.startsWith('https:');
    this.name = this.secure ? '__Host-tessera_review' : 'tessera_review';
  }

  /** The token from a Cookie header, if it carries this cookie. */
  read(header: string | undefined): string | undefined {
    for (const pair of header?.split(';') ?? []) {
      const separator = pair.indexOf('=');
      if (separator > 0 && pair.slice(0, separator).trim() === this.name) return pair.slice(separator + 1).trim();
    }
    return undefined;
  }

  /** The Set-Cookie value for a session token (base64url, so it needs no encoding). */
  serialize(token: string, maxAgeSeconds: number): string {
    return `${this.name}=${token}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${this.secure ? '; Secure' : ''}`;
  }
}
