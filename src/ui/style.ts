/** The review page's only stylesheet, served from /ui/style.css (the CSP allows no inline styles). */
export const STYLESHEET = `
:root { --fg: #1c2430; --muted: #5f6b7a; --line: #e3e7ee; --bg: #f6f7f9; --card: #fff; --accent: #2457c5;
  --ok-bg: #e3f5e9; --ok-fg: #17693a; --bad-bg: #fde4e4; --bad-fg: #a61b1b; --warn-bg: #fff1d6; --warn-fg: #8a5a00;
  --muted-bg: #eceff3; --info-bg: #e4ecfb; --info-fg: #1f4aa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.top { display: flex; align-items: center; gap: 24px; padding: 12px 24px; background: #172033; color: #fff; }
.top a { color: #d8e2ff; }
.brand { font-weight: 700; font-size: 16px; }
.brand span { font-weight: 400; color: #a9b6d3; margin-left: 4px; }
nav { display: flex; gap: 16px; }
.who { margin-left: auto; display: flex; align-items: center; gap: 8px; }
.who .note { color: #a9b6d3; }
main { padding: 8px 24px 32px; max-width: 1500px; }
h1 { font-size: 22px; margin: 16px 0 12px; }
h2 { font-size: 16px; margin: 0 0 8px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 0 0 16px; }
.panel-ok { border-left: 5px solid var(--ok-fg); }
.panel-bad { border-left: 5px solid var(--bad-fg); }
.panel-head { display: flex; align-items: center; gap: 12px; }
.panel-head h2 { margin: 0; }
.problem { color: var(--bad-fg); }
.note, .empty, .none { color: var(--muted); }
.stats { display: flex; gap: 12px; flex-wrap: wrap; margin: 0 0 16px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 140px; }
.stat strong { display: block; font-size: 22px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); background: #fafbfc; }
tr.row-revoked td, tr.row-denied td { background: #fff8f8; }
.mono, code, time { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge-ok { background: var(--ok-bg); color: var(--ok-fg); }
.badge-bad { background: var(--bad-bg); color: var(--bad-fg); }
.badge-warn { background: var(--warn-bg); color: var(--warn-fg); }
.badge-muted { background: var(--muted-bg); color: var(--muted); }
.badge-info { background: var(--info-bg); color: var(--info-fg); }
.chip { display: inline-block; margin: 0 4px 2px 0; padding: 0 6px; border-radius: 4px; background: var(--muted-bg); font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
.reason { min-width: 130px; max-width: 280px; overflow-wrap: break-word; }
td a { white-space: nowrap; }
.details { max-width: 420px; }
.acting-for { white-space: nowrap; }
.acting-for .issuer { display: block; font-size: 12px; }
ol.act-chain { list-style: none; margin: 4px 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 2px; font-size: 12.5px; }
ol.act-chain li + li::before { content: "→ "; color: var(--muted); }
.signed { color: var(--ok-fg); font-weight: 600; }
.filters { display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: flex-end; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
.filters input, .filters select { font: inherit; padding: 5px 8px; border: 1px solid #c9d0db; border-radius: 6px; min-width: 150px; background: #fff; }
.filters .actions { display: flex; gap: 10px; align-items: center; }
button { font: inherit; padding: 6px 14px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
.pager { display: flex; gap: 16px; margin-top: 10px; }
.error { background: var(--bad-bg); color: var(--bad-fg); border-radius: 6px; padding: 8px 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
footer { padding: 16px 24px; color: var(--muted); font-size: 12px; }
`;
