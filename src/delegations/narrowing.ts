import type { Constraints } from '../backends/http-api/scopes.js';
import { TesseraError } from '../errors.js';

/**
 * How one kind of scope constraint narrows (docs/PROTOCOL.md §12.2): whether a requested value is
 * at least as tight as a granted one, and the tightest value both allow. Every constraint a scope
 * preset defines (src/backends/http-api/presets.ts) has its kind here; a constraint not listed
 * narrows only to itself.
 */
interface ConstraintNarrowing {
  covers(granted: string, requested: string): boolean;
  intersect(a: string, b: string): string;
}

const listOf = (value: string) => value.split(',').map((item) => item.trim()).filter(Boolean);

/** An upper bound (`max_amount`): the requested bound may not be higher. */
const upperBound: ConstraintNarrowing = {
  covers: (granted, requested) => BigInt(requested) <= BigInt(granted),
  intersect: (a, b) => (BigInt(a) <= BigInt(b) ? a : b),
};

/** An allow-list (`models`): the requested list must be a subset. */
const allowList: ConstraintNarrowing = {
  covers: (granted, requested) => {
    const allowed = new Set(listOf(granted));
    return listOf(requested).every((item) => allowed.has(item));
  },
  intersect: (a, b) => {
    const allowed = new Set(listOf(b));
    return listOf(a).filter((item) => allowed.has(item)).join(',');
  },
};

/** Any other constraint: only the same value is as tight. */
const exact: ConstraintNarrowing = {
  covers: (granted, requested) => granted === requested,
  intersect: (a) => a,
};

const NARROWING: Readonly<Record<string, ConstraintNarrowing>> = { max_amount: upperBound, models: allowList };

const narrowingOf = (name: string) => (Object.hasOwn(NARROWING, name) ? NARROWING[name]! : exact);

/**
 * The first constraint `requested` loosens compared with `granted`, or null. A constraint the
 * grant sets and the request leaves out counts as loosened (no constraint is no limit): callers
 * that inherit constraints intersect first (narrowConstraints).
 */
export function looserConstraint(granted: Constraints, requested: Constraints): string | null {
  for (const [name, value] of Object.entries(granted)) {
    if (!Object.hasOwn(requested, name) || !narrowingOf(name).covers(value, requested[name]!)) return name;
  }
  return null;
}

/** What a delegation may hold: the request's constraints, the granted ones filled in where it names none. */
export function inheritConstraints(granted: Constraints, requested: Constraints): Constraints {
  return { ...granted, ...requested };
}

/** The tightest constraints both sets allow (a lease under a chain gets the intersection of its links). */
export function intersectConstraints(a: Constraints, b: Constraints): Constraints {
  const result: Record<string, string> = { ...a };
  for (const [name, value] of Object.entries(b)) {
    result[name] = Object.hasOwn(result, name) ? narrowingOf(name).intersect(result[name]!, value) : value;
  }
  return result;
}

/** Why a delegation under `granted` cannot have `requested` (`delegation_scope_wider`, naming `whose`), or undefined if it can. */
export function narrowingRefusal(granted: Constraints, requested: Constraints | undefined, whose: string): TesseraError | undefined {
  const looser = looserConstraint(granted, inheritConstraints(granted, requested ?? {}));
  return looser === null ? undefined : new TesseraError('delegation_scope_wider', `Constraint ${looser} would be looser than ${whose}.`);
}

/**
 * The constraints a delegation under `granted` gets: those requested, the granted ones filled in for
 * what it leaves out. Refused (narrowingRefusal) when one is looser than `granted` (`whose`).
 */
export function narrowedConstraints(granted: Constraints, requested: Constraints | undefined, whose: string): Constraints {
  const refusal = narrowingRefusal(granted, requested, whose);
  if (refusal) throw refusal;
  return inheritConstraints(granted, requested ?? {});
}
