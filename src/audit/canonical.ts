/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte string a JSON value hashes to, so that
 * audit hashes can be recomputed in any language. Object members are sorted by UTF-16 code units
 * (JavaScript's default string order), no whitespace, strings and numbers serialised exactly as
 * ECMAScript JSON.stringify does (which is what RFC 8785 §3.2.2 prescribes).
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('RFC 8785: NaN and Infinity have no JSON form');
      return JSON.stringify(value);
    case 'object':
      if (value === null) return 'null';
      return Array.isArray(value) ? canonicalArray(value) : canonicalObject(value as Record<string, unknown>);
    default:
      throw new TypeError(`RFC 8785: a ${typeof value} has no JSON form`);
  }
}

function canonicalArray(values: readonly unknown[]): string {
  let text = '[';
  for (let i = 0; i < values.length; i++) text += (i === 0 ? '' : ',') + canonicalJson(values[i]);
  return `${text}]`;
}

// Hot path of verification: plain loops, and no sort when the members are already in order.
function canonicalObject(record: Record<string, unknown>): string {
  const keys = Object.keys(record);
  if (!isSorted(keys)) keys.sort();
  let text = '{';
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    text += `${text.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(member)}`;
  }
  return `${text}}`;
}

function isSorted(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return true;
}
