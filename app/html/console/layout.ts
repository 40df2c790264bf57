// The console's page shell: one stylesheet and one script from /console/assets/ (no CDN, no
// build step), a skip link, the navigation, who is signed in, and the CSRF token the script
// sends with every state-changing request. The admin token and the session secret are never
// written into a page.
import { assetUrl } from './assets.ts';
import { esc } from './html.ts';

/** The console's sections, in navigation order. */
export const SECTIONS = [
  { key: 'fleet', href: '/', label: 'Fleet' },
  { key: 'keys', href: '/provisioning-keys', label: 'Provisioning keys' },
  { key: 'webhooks', href: '/webhooks', label: 'Webhooks' },
  { key: 'listeners', href: '/listeners', label: 'Listeners' },
  { key: 'events', href: '/events', label: 'Live events' },
  { key: 'analytics', href: '/analytics', label: 'Analytics' },
  { key: 'integrity', href: '/integrity', label: 'Integrity' },
] as const;

/** Which section a page belongs to. */
export type Section = (typeof SECTIONS)[number]['key'];

/** What a signed-in page is made of. */
export type PageInput = {
  title: string;
  section: Section;
  admin: { name: string };
  csrfToken: string;
  body: string;
  /** Query of the page's one live event stream (GET /api/v1/events/stream?…); none when absent. */
  liveStream?: string;
  /** The page's own module in /console/assets/ (it imports console.js); console.js when absent. */
  script?: string;
};

/** The Content-Security-Policy of console pages: everything from this origin, nothing inline. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const head = (title: string, extra = '') =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · devicetrail console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assetUrl('console.css')}">
${extra}</head>`;

/** A signed-in console page. */
export function renderPage(input: PageInput): string {
  const nav = SECTIONS.map((s) =>
    `<li><a href="${s.href}"${s.key === input.section ? ' aria-current="page"' : ''}>${esc(s.label)}</a></li>`
  ).join('');
  // a page module imports ./console.js itself: linking both would load console.js under two URLs
  // (with and without ?v=), that is, twice
  const scripts = `<script type="module" src="${esc(assetUrl(input.script ?? 'console.js'))}"></script>`;
  return `${head(input.title, `<meta name="csrf-token" content="${esc(input.csrfToken)}">\n${scripts}\n`)}
<body${input.liveStream === undefined ? '' : ` data-live-stream="${esc(input.liveStream)}"`}>
<a class="skip-link" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">devicetrail</a>
  <nav aria-label="Console sections"><ul>${nav}</ul></nav>
  <div class="who">
    <span>Signed in as <strong>${esc(input.admin.name)}</strong></span>
    <button type="button" class="link-button" data-sign-out>Sign out</button>
  </div>
</header>
<main id="main" tabindex="-1">
<h1>${esc(input.title)}</h1>
<p id="live-status" class="live-status" role="status" aria-live="polite"></p>
<div id="page-error" class="error" role="alert"></div>
${input.body}
</main>
<div id="toast" class="toast" role="status" aria-live="polite"></div>
</body>
</html>
`;
}

/** The sign-in page: the token goes from the password field into one request's header, nowhere else. */
export function renderSignInPage(next: string): string {
  return `${head('Sign in', `<script type="module" src="${esc(assetUrl('sign-in.js'))}"></script>\n`)}
<body class="sign-in">
<main id="main">
<h1>devicetrail console</h1>
<form id="sign-in" method="post" data-next="${esc(next)}" autocomplete="off">
  <p>Sign in with an admin token (<code>npm run admin -- create-token --name &lt;you&gt;</code>, or
  <code>.data/admin-token</code> on a fresh install). The token is exchanged for a session cookie and
  is not kept by the browser.</p>
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" required autocomplete="off" spellcheck="false">
  <button type="submit">Sign in</button>
  <p id="sign-in-error" class="error" role="alert"></p>
</form>
<noscript><p class="error">The console needs JavaScript to sign in.</p></noscript>
</main>
</body>
</html>
`;
}
