import { randomFillSync } from 'node:crypto';
import { encodeTime } from 'ulid';
import { SCHEDULER_RUN_ID } from './store/bullmq-layout.ts';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * CSPRNG bytes drawn 4 kB at a time: one call to the generator per 409 ids, not one per id (it
 * showed in the API's profile under submit load). Each byte is used once.
 */
const pool = Buffer.alloc(4_090);
let poolOffset = pool.length;

/** 80 random bits as 16 Crockford base-32 characters. */
function randomPart(): string {
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + 10);
  poolOffset += 10;
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

/**
 * Job ids: `job_` + a ULID (48-bit creation time, 80 random bits): unguessable, and sortable by
 * creation, which the tenant index relies on. (`ulid()` itself asks the CSPRNG once per character.)
 */
export function newJobId(now = Date.now()): string {
  return `job_${encodeTime(now, 10)}${randomPart()}`;
}

const JOB_ID = /^job_[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * Whether a string is shaped like one of our job ids (checked before any Redis read): ours, or
 * the id BullMQ gives a run of a schedule (its schedule id is unguessable, so the run's is too).
 */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id) || SCHEDULER_RUN_ID.test(id);
}

/** Schedule ids: `sch_` + a ULID; they are also the ids of their BullMQ job schedulers. */
export function newScheduleId(now = Date.now()): string {
  return `sch_${encodeTime(now, 10)}${randomPart()}`;
}

const SCHEDULE_ID = /^sch_[0-9A-HJKMNP-TV-Z]{26}$/;

/** Whether a string is shaped like a schedule id (checked before any Redis read). */
export function isScheduleId(id: string): boolean {
  return SCHEDULE_ID.test(id);
}
