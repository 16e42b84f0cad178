/**
 * The form of a proxied request, checked before its scope: what the proxy parses is parsed in
 * linear time, never from a header longer than the proxy reads.
 */
import { describe, expect, it } from 'vitest';
import { STRIPE_PRESETS } from '../../src/backends/http-api/presets.js';
import { compileScope, declaresMediaType } from '../../src/backends/http-api/scopes.js';

const FORM = 'application/x-www-form-urlencoded';
/** 1 MiB of blanks: a run of optional white space followed by other text cost a regex time quadratic in its length. */
const BLANKS = ' \t'.repeat(512 * 1024);

describe('scope checks: Content-Type and Content-Encoding are parsed in linear time', () => {
  // Each of these took the old `[ \t]+$` trimming regex minutes; a timeout of the test is the regression signal.
  it('a 1 MiB run of blanks inside a Content-Type is answered at once', () => {
    expect(declaresMediaType(`${FORM}${BLANKS}x`, FORM)).toBe(false);
    expect(declaresMediaType(`${FORM};${BLANKS}charset${BLANKS}=${BLANKS}utf-16${BLANKS}x`, FORM)).toBe(false);
    expect(declaresMediaType(`${BLANKS}${FORM}${BLANKS};${BLANKS}charset=utf-8${BLANKS}`, FORM)).toBe(true);
  });

  it('a 1 MiB run of blanks inside a Content-Encoding is answered at once', () => {
    const refunds = compileScope(STRIPE_PRESETS['refunds:write']!, { max_amount: '5000' });
    const verdict = refunds.check('POST', '/v1/refunds', '', { 'content-type': FORM, 'content-encoding': `identity${BLANKS}x` });
    expect(verdict).toEqual({ code: 'invalid_request', message: expect.stringContaining('without Content-Encoding') });
    expect(typeof refunds.check('POST', '/v1/refunds', '', { 'content-type': FORM, 'content-encoding': `${BLANKS}identity${BLANKS}` })).toBe('function');
  });
});
