/**
 * Scans over JSON text that JSON.parse has already accepted, for what JSON.parse hides: it keeps
 * the last of two members with the same name, where other parsers keep the first or refuse.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

/** The first member name some object of valid JSON `text` holds twice (escaped spellings such as `"k\u0069d"` too), or null. */
export function duplicateMember(text: string): string | null {
  // One set of names per open object, null per open array; innermost last.
  const open: (Set<string> | null)[] = [];
  for (let index = 0; index < text.length; index += 1) {
    const char = text.charCodeAt(index);
    if (char === QUOTE) {
      const end = stringEnd(text, index);
      const names = open[open.length - 1];
      if (names && nextIsColon(text, end + 1)) {
        const raw = text.slice(index + 1, end);
        const name = raw.includes('\\') ? (JSON.parse(text.slice(index, end + 1)) as string) : raw;
        if (names.has(name)) return name;
        names.add(name);
      }
      index = end;
    } else if (char === 0x7b) open.push(new Set()); // {
    else if (char === 0x5b) open.push(null); // [
    else if (char === 0x7d || char === 0x5d) open.pop(); // } ]
  }
  return null;
}

/** The index of the quote closing the string that opens at `open` (one not escaped by an odd run of backslashes). */
export function stringEnd(text: string, open: number): number {
  let close = text.indexOf('"', open + 1);
  while (close !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(close - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return close;
    close = text.indexOf('"', close + 1);
  }
  return text.length;
}

/** Whether the next non-whitespace character from `from` is a colon: the string before it is a member name. */
export function nextIsColon(text: string, from: number): boolean {
  for (let index = from; index < text.length; index += 1) {
    const char = text.charCodeAt(index);
    if (char !== 0x20 && char !== 0x09 && char !== 0x0a && char !== 0x0d) return char === COLON;
  }
  return false;
}
