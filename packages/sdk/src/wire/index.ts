/**
 * The wire protocol's JSON shapes as TypeBox schemas (JSON Schema values with static types): the
 * broker's routes validate and serialise with them, the SDK and CLI type with them, and the
 * broker's OpenAPI document (`GET /openapi.json`, docs/openapi.json) is generated from them.
 */
export { ERROR_CODES, type ErrorCode, isTesseraError, TesseraError } from '../errors.js';
export * from './audit.js';
export * from './backends.js';
export * from './common.js';
export * from './discovery.js';
export * from './identities.js';
export * from './keys.js';
export * from './leases.js';
export * from './delegations.js';
export * from './sessions.js';
export * from './trust.js';
export * from './user-delegations.js';
