/**
 * A deterministic problem with the dataset or the request (empty, not UTF-8, too big, an unknown
 * column, a refused URL): retrying cannot fix it, so the job fails at once with this message.
 * Plain errors (a network timeout, a 5xx) are transient and retried.
 */
export class DatasetError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DatasetError';
  }
}
