import { describe, expect, it } from 'vitest';
import { isJobId, newJobId } from './ids.ts';

describe('job ids', () => {
  it('when made, then they are job_ + 26 Crockford characters and pass the shape check', () => {
    const id = newJobId();
    expect(id).toMatch(/^job_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(isJobId(id)).toBe(true);
  });

  it('when made one after another, then they sort by creation time and never repeat', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => newJobId(1_700_000_000_000 + i));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids.map((id) => id.slice(14))).size).toBe(ids.length);
  });

  it('when a string is not an id, then the shape check refuses it', () => {
    for (const bad of ['', 'job_', 'job_../../etc', `job_${'0'.repeat(25)}`, `job_${'U'.repeat(26)}`, '1']) {
      expect(isJobId(bad)).toBe(false);
    }
  });
});
