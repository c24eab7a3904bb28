import { type AnalysisName, analysisNames, getContract, isAnalysisName } from '@longhaul/shared';
import { HttpError } from '../http/http-error.ts';
import { issuesToDetails } from './schemas.ts';

/** The analysis named `type`, or `400 unknown_analysis` listing the known ones. */
export function contractFor(type: string) {
  if (!isAnalysisName(type)) {
    throw new HttpError(400, 'unknown_analysis', `unknown analysis type "${type}"`, { known: analysisNames });
  }
  return getContract(type);
}

/**
 * `input` parsed by the analysis' own schema, or `400 validation_failed` with field-level details.
 * Shared by submissions and schedules, so both refuse a bad input with the same answer.
 */
export function validAnalysisInput(type: string, input: unknown): { name: AnalysisName; input: unknown } {
  const contract = contractFor(type);
  const parsed = contract.input.safeParse(input);
  if (!parsed.success) {
    throw new HttpError(
      400,
      'validation_failed',
      `the input does not match the "${type}" schema`,
      issuesToDetails(parsed.error, 'input'),
    );
  }
  return { name: type as AnalysisName, input: parsed.data };
}
