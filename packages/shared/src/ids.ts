import { ulid } from 'ulid';

/** Job ids: `job_` + a ULID (48-bit time, 80 random bits): unguessable, sortable by creation. */
export function newJobId(): string {
  return `job_${ulid()}`;
}

const JOB_ID = /^job_[0-9A-HJKMNP-TV-Z]{26}$/;

/** Whether a string is shaped like one of our job ids (checked before any Redis read). */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}
