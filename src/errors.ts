/**
 * The error table and class live in the SDK package (they are part of the wire protocol, and key
 * store code shared with the SDK throws them); the broker uses them from there.
 */
export { ERROR_CODES, type ErrorCode, isTesseraError, TesseraError } from '@tessera-broker/sdk/wire';
