import { DEFAULT_REVIEW_SESSION_POLICY } from '../../review/sessions.js';
import { type Html, html } from '../html.js';

const { codeTtlMs, sessionTtlMs } = DEFAULT_REVIEW_SESSION_POLICY;

/** Shown instead of any page when the visitor is not signed in (or the login link failed). */
export function signInPage(message: string): Html {
  return html`<section class="panel-bad panel">
    <p>${message}</p>
    <p>Reviewers sign in with a one-time link made by the CLI, which signs the request with the reviewer's key:</p>
    <pre><code>tessera review open --key &lt;your reviewer key URI&gt;</code></pre>
    <p class="note">Open the printed link within ${codeTtlMs / 1000} seconds; it works once. The session then lasts ${sessionTtlMs / 60_000} minutes.</p>
  </section>`;
}

export function errorPage(message: string): Html {
  return html`<section><p class="error">${message}</p><p><a href="/ui">Back to the overview</a></p></section>`;
}
