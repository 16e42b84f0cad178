/**
 * Scopes of proxied leases. A scope preset is a named set of request rules (method + path) plus the
 * constraints a grant may add (e.g. `max_amount`). A grant names the preset (as its role) and its
 * constraints; the credential proxy compiles the pair once and checks every request against it
 * before anything reaches the upstream. Request bodies are read only when a rule's constraint needs
 * them, and only the one field it checks.
 */
import { TesseraError } from '../../errors.js';

/** Constraint values as granted: strings; lists are comma-separated (`models=gpt-4o,gpt-4o-mini`). */
export type Constraints = Readonly<Record<string, string>>;

export interface Refusal {
  readonly code: 'scope_violation' | 'constraint_violation' | 'invalid_request';
  readonly message: string;
}

/** Checks a buffered request body; returns why it is refused, or undefined. */
export type BodyCheck = (body: Buffer) => Refusal | undefined;

export interface ScopeRule {
  readonly method: string;
  /** Anchored pattern over the path without its query string. */
  readonly path: RegExp;
  /** The body check these constraints call for on this route; undefined: the body streams through unread. */
  readonly body?: (constraints: Constraints) => BodyCheck | undefined;
}

export interface ConstraintSpec {
  readonly description: string;
  /** Returns an error message for a bad value. */
  validate(value: string): string | undefined;
}

export interface ScopePreset {
  readonly description: string;
  readonly rules: readonly ScopeRule[];
  readonly constraints: Readonly<Record<string, ConstraintSpec>>;
}

/** A preset compiled with one grant's constraints: what the proxy asks per request. */
export interface Scope {
  /** A Refusal, a BodyCheck the (buffered) body must pass, or null: allowed as is. */
  check(method: string, path: string): Refusal | BodyCheck | null;
}

export function isRefusal(verdict: Refusal | BodyCheck | null): verdict is Refusal {
  return verdict !== null && typeof verdict === 'object';
}

export function compileScope(preset: ScopePreset, constraints: Constraints): Scope {
  const rules = preset.rules.map((rule) => ({ rule, body: rule.body?.(constraints) }));
  return {
    check(method, path) {
      const match = rules.find(({ rule }) => rule.method === method && rule.path.test(path));
      if (!match) return { code: 'scope_violation', message: `${method} ${path} is outside the lease's scope.` };
      return match.body ?? null;
    },
  };
}

/** Validates a grant's constraints against the preset; unknown names and bad values are refused. */
export function checkConstraints(preset: ScopePreset | undefined, role: string, constraints: Constraints): void {
  const specs = preset?.constraints ?? {};
  for (const [name, value] of Object.entries(constraints)) {
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!spec) {
      const known = Object.keys(specs);
      throw new TesseraError('invalid_request', `Scope "${role}" has no constraint "${name}"${known.length ? ` (known: ${known.join(', ')})` : ''}.`);
    }
    const problem = spec.validate(value);
    if (problem) throw new TesseraError('invalid_request', `Constraint ${name}: ${problem}`);
  }
}

/** `^prefix` at a path-segment boundary: `/v1/items` allows `/v1/items` and `/v1/items/3`, not `/v1/itemsx`. */
export function pathPrefix(prefix: string): RegExp {
  const escaped = prefix.replace(/\/+$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped}(?:/|$)`);
}

/** Every method of `methods` on a path pattern. */
export const routes = (methods: readonly string[], path: RegExp, body?: ScopeRule['body']): ScopeRule[] =>
  methods.map((method) => ({ method, path, ...(body && { body }) }));
