import type { z } from 'zod';
import { datasetProfile } from './analyses/dataset-profile.ts';
import { datasetProfilePart } from './analyses/dataset-profile-part.ts';
import { simulate } from './analyses/simulate.ts';
import type { AnalysisContract } from './analysis.ts';

/** Every analysis longhaul runs, by name. Add a contract here and an implementation in the worker. */
export const analyses = {
  [simulate.name]: simulate,
  [datasetProfile.name]: datasetProfile,
  [datasetProfilePart.name]: datasetProfilePart,
} as const satisfies Record<string, AnalysisContract>;

export type AnalysisName = keyof typeof analyses;
export type AnalysisInput<N extends AnalysisName> = z.input<(typeof analyses)[N]['input']>;
export type ParsedInput<N extends AnalysisName> = z.output<(typeof analyses)[N]['input']>;
export type AnalysisResult<N extends AnalysisName> = z.output<(typeof analyses)[N]['result']>;

export const analysisNames = Object.keys(analyses) as AnalysisName[];

export function isAnalysisName(name: string): name is AnalysisName {
  return Object.hasOwn(analyses, name);
}

export function getContract<N extends AnalysisName>(name: N): (typeof analyses)[N] {
  return analyses[name];
}
