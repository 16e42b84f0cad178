/**
 * HTML built only through the `html` tag: every interpolated value is escaped unless it is itself
 * Html, so addresses, attributes and reasons (all attacker-influenced) always render as text.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (char) => ESCAPES[char]!);
}

/** Arrays are rendered item by item; null, undefined and false render as nothing. */
function render(value: unknown): string {
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return new Html(strings.reduce((out, part, index) => out + render(values[index - 1]) + part));
}

/** A same-origin link: the path is fixed by the caller, the query values are encoded. */
export function href(path: string, query: Readonly<Record<string, string | number | undefined>> = {}): string {
  const defined = Object.entries(query).filter((entry): entry is [string, string | number] => entry[1] !== undefined && entry[1] !== '');
  return defined.length ? `${path}?${new URLSearchParams(defined.map(([key, value]): [string, string] => [key, String(value)])).toString()}` : path;
}
