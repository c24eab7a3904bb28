import type { AnalysisName } from '@longhaul/shared';
import { analysisNames } from '@longhaul/shared';
import { datasetProfile } from './analyses/dataset-profile.ts';
import { datasetProfilePart } from './analyses/dataset-profile-part.ts';
import { simulate } from './analyses/simulate.ts';
import type { Analysis, Implementation } from './define-analysis.ts';

/** Every analysis' implementation. A missing one fails the build here, and the start-up check. */
export const implementations = {
  simulate,
  'dataset-profile': datasetProfile,
  'dataset-profile-part': datasetProfilePart,
} satisfies { [N in AnalysisName]: Implementation<N> };

/** Start-up check: each registered analysis has exactly one implementation under its own name. */
export function assertImplementations(impls: Record<string, Analysis>): void {
  const missing = analysisNames.filter((n) => !impls[n]);
  const misnamed = Object.entries(impls).filter(([key, a]) => a.contract.name !== key);
  const unknown = Object.keys(impls).filter((k) => !(analysisNames as string[]).includes(k));
  const problems = [
    ...missing.map((n) => `no implementation for analysis "${n}"`),
    ...misnamed.map(([k, a]) => `implementation "${k}" is bound to contract "${a.contract.name}"`),
    ...unknown.map((k) => `implementation "${k}" has no contract in packages/shared`),
  ];
  if (problems.length > 0) throw new Error(`analysis registry is inconsistent:\n  - ${problems.join('\n  - ')}`);
}
