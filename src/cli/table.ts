/** A compact plain-text table: upper-case headers, columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], empty = '(none)'): string {
  if (rows.length === 0) return empty;
  const all = [headers.map((header) => header.toUpperCase()), ...rows];
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n');
}

/** `key  value` lines for one object; nested values as JSON. */
export function details(record: object): string {
  const entries = Object.entries(record);
  const width = Math.max(...entries.map(([key]) => key.length));
  return entries
    .map(([key, value]) => `${key.padEnd(width)}  ${typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)}`)
    .join('\n');
}

/** Seconds as the largest exact unit: 3600 -> 1h, 90 -> 90s. */
export function formatSeconds(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
