import type { ReviewSession } from '../review/sessions.js';
import { badge } from './components.js';
import { type Html, html } from './html.js';

export const STYLESHEET_PATH = '/ui/style.css';

/** The page shell: header with who is signed in, navigation, and the content. No scripts anywhere. */
export function layout(title: string, session: ReviewSession | null, content: Html): Html {
  const who = session
    ? html`<div class="who"><span>${session.identity.address}</span> ${badge(session.identity.role, 'info')} ${badge('read-only', 'muted')}
        <span class="note">session until <time datetime="${new Date(session.expiresAt).toISOString()}">${new Date(session.expiresAt).toISOString().slice(11, 16)} UTC</time></span></div>`
    : '';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title} · Tessera review</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<header class="top">
  <div class="brand">Tessera <span>security review</span></div>
  ${session ? html`<nav><a href="/ui">Overview</a><a href="/ui/audit">Audit log</a></nav>` : ''}
  ${who}
</header>
<main>
<h1>${title}</h1>
${content}
</main>
<footer>Read-only view of the broker's identities, leases and tamper-evident audit log. Nothing on this page can change them.</footer>
</body>
</html>`;
}
