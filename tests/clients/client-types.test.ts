import * as shared from '@longhaul/shared';
import { signWebhook as serverSign } from '@longhaul/shared/webhook-signature';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type * as sdk from '../../packages/client/src/index.ts';
import { FINAL_STATUSES } from '../../packages/client/src/index.ts';
import { signWebhook, verifyWebhook, WebhookSignatureError } from '../../packages/client/src/node.ts';

/**
 * The SDK writes the API's contract out by hand, so it ships without the server's code. These
 * checks fail `pnpm typecheck` (and this file) when the server's schemas and the SDK's types part.
 */
describe("the SDK's own types against the server's schemas", () => {
  it('when the server changes the job view, then the SDK must change with it', () => {
    expectTypeOf<sdk.JobView>().toEqualTypeOf<shared.JobView>();
    expectTypeOf<sdk.Progress>().toEqualTypeOf<shared.Progress>();
    expectTypeOf<sdk.WebhookView>().toEqualTypeOf<shared.WebhookView>();
    expectTypeOf<sdk.StepView>().toEqualTypeOf<shared.StepView>();
    expectTypeOf<sdk.ChildCounts>().toEqualTypeOf<shared.JobView['children'] & {}>();
    expectTypeOf<sdk.JobStatus>().toEqualTypeOf<shared.JobStatus>();
    expectTypeOf<sdk.ErrorCode>().toEqualTypeOf<shared.ErrorCode>();
    expectTypeOf<sdk.ScheduleView>().toEqualTypeOf<shared.ScheduleView>();
    expect([...FINAL_STATUSES]).toEqual([...shared.FINAL_STATUSES]);
  });

  it('when an analysis is added or its schemas change, then the SDK must list the same inputs and results', () => {
    expectTypeOf<sdk.AnalysisName>().toEqualTypeOf<shared.AnalysisName>();
    expectTypeOf<sdk.AnalysisInput<'simulate'>>().toEqualTypeOf<shared.AnalysisInput<'simulate'>>();
    expectTypeOf<sdk.AnalysisResult<'simulate'>>().toEqualTypeOf<shared.AnalysisResult<'simulate'>>();
    expectTypeOf<sdk.AnalysisInput<'dataset-profile'>>().toEqualTypeOf<shared.AnalysisInput<'dataset-profile'>>();
    expectTypeOf<sdk.AnalysisResult<'dataset-profile'>>().toEqualTypeOf<shared.AnalysisResult<'dataset-profile'>>();
    expect(Object.keys(shared.analyses).sort()).toEqual(['dataset-profile', 'simulate']);
  });

  it("when the worker signs a delivery, then @longhaul/client/node's verifyWebhook accepts it and refuses a changed body", () => {
    const secret = 'whsec-0123456789abcdef';
    const body = JSON.stringify({ id: 'job_1', status: 'completed' });
    const header = serverSign(secret, body);
    expect(signWebhook).toBe(serverSign);
    expect(() => verifyWebhook(secret, header, body)).not.toThrow();
    expect(() => verifyWebhook(secret, header, `${body} `)).toThrow(WebhookSignatureError);
  });
});
