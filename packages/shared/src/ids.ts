import { randomBytes } from 'node:crypto';
import { encodeTime } from 'ulid';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 80 random bits as 16 Crockford base-32 characters, from one `randomBytes` call. */
function randomPart(): string {
  const bytes = randomBytes(10);
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

/** Whether a string is shaped like one of our job ids (checked before any Redis read). */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}
