import { BackendError } from '../backends/credential-backend.js';
import { TesseraError } from '../errors.js';

/** Maps a backend failure to the error the agent sees: retry later (503) or a rejection (502). */
export function upstreamError(error: unknown): TesseraError {
  if (error instanceof TesseraError) return error;
  if (error instanceof BackendError) return new TesseraError(error.retryable ? 'backend_unavailable' : 'backend_error', error.message);
  return new TesseraError('backend_error');
}
