import { rowOf } from './dataset-server.ts';

/** Statistics of the generated dataset, computed independently of the profiler (plain loops). */
export function expectedStats(rows: number) {
  const values: number[] = [];
  const groups = new Map<string, number>();
  let flags = 0;
  for (let i = 0; i < rows; i++) {
    const [, value, group, flag] = rowOf(i).trim().split(',');
    values.push(Number(value));
    groups.set(group as string, (groups.get(group as string) ?? 0) + 1);
    if (flag === 'true') flags++;
  }
  const mean = values.reduce((a, b) => a + b, 0) / rows;
  const std = Math.sqrt(values.reduce((a, x) => a + (x - mean) ** 2, 0) / (rows - 1));
  return {
    rows,
    idMean: (rows - 1) / 2,
    value: {
      min: values.reduce((a, b) => Math.min(a, b)),
      max: values.reduce((a, b) => Math.max(a, b)),
      mean,
      std,
      distinct: new Set(values).size,
    },
    groups,
    flags,
  };
}
