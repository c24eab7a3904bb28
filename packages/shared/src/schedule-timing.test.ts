import { describe, expect, it } from 'vitest';
import { cronIssues, cronShortestGapMs, nextCronRun } from './schedule-timing.ts';

describe('schedule timing', () => {
  it('when a cron is in a time zone with DST, then the next run is that wall-clock time in the zone', () => {
    // 2024-03-10 is the day New York moves to EDT (UTC-4): 09:00 there is 13:00 UTC, not 14:00.
    const next = nextCronRun('0 9 * * *', 'America/New_York', Date.parse('2024-03-10T12:00:00Z'));
    expect(next?.toISOString()).toBe('2024-03-10T13:00:00.000Z');
    const before = nextCronRun('0 9 * * *', 'America/New_York', Date.parse('2024-03-09T12:00:00Z'));
    expect(before?.toISOString()).toBe('2024-03-09T14:00:00.000Z');
  });

  it('when a cron field is wrong, then the issue names that field', () => {
    expect(cronIssues('0 25 * * *')).toEqual([{ path: 'cron.hour', message: expect.stringMatching(/25/) }]);
    expect(cronIssues('0 0 * * * *')).toEqual([]);
    expect(cronIssues('* * *')[0]?.path).toBe('cron');
    expect(cronIssues('@daily')).toEqual([]);
  });

  it('when a cron fires every few seconds within some hours only, then its shortest gap is still seen', () => {
    expect(cronShortestGapMs('*/5 * 3 * * *')).toBe(5_000);
    expect(cronShortestGapMs('0,30 * * * * *')).toBe(30_000);
    expect(cronShortestGapMs('*/15 * * * *')).toBe(900_000);
    expect(cronShortestGapMs('0 9 * * *')).toBeGreaterThanOrEqual(3_600_000);
  });
});
