/**
 * dataset-profile's bounds, apart from its schemas (dataset-profile.ts): the worker's profile
 * thread reads them, and this module imports nothing, so the thread does not load zod at start.
 */

/** Most columns one profile tracks; more would make the state (and checkpoints) unbounded. */
export const DATASET_MAX_COLUMNS = 500;
/** Above this many distinct values a column's distinct count is a HyperLogLog estimate. */
export const DATASET_EXACT_DISTINCT_LIMIT = 1000;
/** Most byte-range parts one parallel profile is split into. */
export const DATASET_MAX_PARALLELISM = 64;
/** Without `parallelism`, a URL dataset is split into one part per this many bytes (64 MiB). */
export const DATASET_PART_BYTES = 64 * 1024 * 1024;
/** The quantiles every numeric or date/time column reports. */
export const DATASET_QUANTILES = ['p01', 'p05', 'p25', 'p50', 'p75', 'p95', 'p99'] as const;
