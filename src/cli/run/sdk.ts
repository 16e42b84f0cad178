/**
 * The SDK's public API as `tessera run` uses it: nothing here reaches past the SDK's index, and this
 * line is the one to repoint when the SDK becomes its own package.
 */
export { type AutoRenewEnd, type AutoRenewTimers, BrokerRequestError, createClient, isPostgresCredential, type Lease, systemTimers, type TesseraClient } from '../../sdk/index.js';
