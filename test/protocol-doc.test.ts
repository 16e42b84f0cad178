import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/errors.js';

const protocol = readFileSync(new URL('../docs/PROTOCOL.md', import.meta.url), 'utf8');
const documented = new Map(
  [...protocol.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((match) => [match[1]!, Number(match[2])]),
);

describe('docs/PROTOCOL.md', () => {
  it('documents every error code with the status the broker sends', () => {
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(Object.entries(ERROR_CODES).map(([code, { status }]) => [code, status])));
  });
});
