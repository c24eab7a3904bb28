import { describe, expect, it } from 'vitest';
import { simulate } from './analyses/simulate.ts';
import { assertImplementations, implementations } from './implementations.ts';

describe('the implementation registry', () => {
  it('when every contract has its implementation, then the start-up check passes', () => {
    expect(() => assertImplementations(implementations)).not.toThrow();
  });

  it('when one is missing or bound to another name, then start-up refuses and says which', () => {
    expect(() => assertImplementations({})).toThrow(/no implementation for analysis "simulate"/);
    expect(() => assertImplementations({ simulate, other: simulate })).toThrow(
      /"other" is bound to contract "simulate"/,
    );
  });
});
