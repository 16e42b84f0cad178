/**
 * Built-in scope presets of the `stripe` and `openai` backend types (docs/PROTOCOL.md §9.3). A new
 * preset is one more entry here: its rules (method + anchored path) and the constraints it takes.
 */
import type { BodyCheck, BodyConstraint, ConstraintSpec, Refusal, ScopePreset } from './scopes.js';
import { formField, jsonMember, routes } from './scopes.js';

const violation = (message: string): Refusal => ({ code: 'constraint_violation', message });

const positiveInteger: ConstraintSpec = {
  description: 'a positive integer',
  validate: (value) => (/^[1-9]\d{0,15}$/.test(value) ? undefined : 'must be a positive integer'),
};

const nameList: ConstraintSpec = {
  description: 'a comma-separated list of names',
  validate: (value) => (listOf(value).length > 0 ? undefined : 'must name at least one entry'),
};

const listOf = (value: string) => value.split(',').map((item) => item.trim()).filter(Boolean);

function maxAmountCheck(constraints: Readonly<Record<string, string>>): BodyCheck | undefined {
  if (constraints.max_amount === undefined) return undefined;
  const max = Number(constraints.max_amount);
  return (body) => {
    // Stripe bodies are form-encoded; a missing amount would refund the whole charge.
    const field = formField(body, 'amount');
    if (field === undefined) return violation(`refunds need an explicit amount (max_amount is ${max})`);
    if ('code' in field) return field;
    const amount = field.value;
    if (!/^\d+$/.test(amount) || Number(amount) > max) return violation(`refund amount ${amount} exceeds max_amount ${max}`);
    return undefined;
  };
}

function modelCheck(constraints: Readonly<Record<string, string>>): BodyCheck | undefined {
  if (constraints.models === undefined) return undefined;
  const allowed = new Set(listOf(constraints.models));
  return (body) => {
    // OpenAI bodies are JSON; only the one top-level member is looked at.
    const field = jsonMember(body, 'model');
    if ('code' in field) return field;
    const model = field.value;
    if (typeof model !== 'string' || !allowed.has(model)) return violation(`model ${JSON.stringify(model ?? null)} is not allowed (allowed: ${[...allowed].join(', ')})`);
    return undefined;
  };
}

/** What the checks parse the body as; the request must declare the same Content-Type. */
const maxAmount: BodyConstraint = { mediaType: 'application/x-www-form-urlencoded', compile: maxAmountCheck };
const allowedModels: BodyConstraint = { mediaType: 'application/json', compile: modelCheck };

const READ = ['GET'];
/** A collection and its items, e.g. /v1/charges and /v1/charges/ch_123. */
const collection = (...names: string[]) => new RegExp(`^/v1/(?:${names.join('|')})(?:/[A-Za-z0-9_]+)?$`);

export const STRIPE_PRESETS: Readonly<Record<string, ScopePreset>> = {
  'refunds:write': {
    description: 'create and read refunds; read charges and payment intents',
    constraints: { max_amount: { ...positiveInteger, description: 'largest refund, in the smallest currency unit' } },
    rules: [
      ...routes(['POST'], /^\/v1\/refunds$/, maxAmount),
      ...routes(READ, collection('refunds', 'charges', 'payment_intents')),
    ],
  },
  'billing:read': {
    description: 'read customers, invoices, subscriptions, prices and products',
    constraints: {},
    rules: routes(READ, collection('customers', 'invoices', 'subscriptions', 'prices', 'products')),
  },
};

/** An OpenAI preset: POST endpoints whose `model` the `models` constraint limits, plus listing models. */
const openaiPreset = (description: string, endpoints: RegExp): ScopePreset => ({
  description,
  constraints: { models: { ...nameList, description: 'models the lease may use, comma-separated' } },
  rules: [...routes(['POST'], endpoints, allowedModels), ...routes(READ, /^\/v1\/models(?:\/[A-Za-z0-9_.:-]+)?$/)],
});

export const OPENAI_PRESETS: Readonly<Record<string, ScopePreset>> = {
  chat: openaiPreset('chat completions and responses; list models', /^\/v1\/(?:chat\/completions|responses)$/),
  embeddings: openaiPreset('embeddings; list models', /^\/v1\/embeddings$/),
};
