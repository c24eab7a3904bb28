import {
  type AnalysisInput,
  type AnalysisName,
  type ChildOutcome,
  type ChildRunStore,
  decodeFailure,
  type Failure,
  getContract,
  isAnalysisName,
  jobData,
  jobOptionsFor,
  type Logger,
  type NewChild,
  newJobId,
  traceMetadata,
} from '@longhaul/shared';
import { type Job, WaitingChildrenError } from 'bullmq';
import { PermanentError } from './errors/permanent-error.ts';

/** A child job to start: an analysis and its input, checked against that analysis' contract. */
export type SpawnChild = { [N in AnalysisName]: { type: N; input: AnalysisInput<N> } }[AnalysisName];

/** How one child ended, for an analysis that continues on failure. */
export type SpawnOutcome<T = unknown> =
  | { id: string; status: 'completed'; result: T }
  | { id: string; status: 'failed' | 'cancelled'; error: Failure };

export interface SpawnOptions {
  /**
   * Keep going when children fail: `spawn` waits for every child and resolves with each one's
   * outcome instead of failing the job with `child_failed` at the first failure. Default `false`.
   */
  continueOnFailure?: boolean;
  /**
   * Called once the children are recorded and queued, before the job starts waiting for them; only
   * on the run that started them (a later run finds them recorded and does not call it).
   */
  onSpawned?: (childIds: string[]) => void | Promise<void>;
}

/** `ctx.spawn`, typed by whether the analysis continues on failure. */
export interface Spawn {
  <T = unknown>(children: readonly SpawnChild[], opts?: SpawnOptions & { continueOnFailure?: false }): Promise<T[]>;
  <T = unknown>(
    children: readonly SpawnChild[],
    opts: SpawnOptions & { continueOnFailure: true },
  ): Promise<SpawnOutcome<T>[]>;
}

export interface SpawnDeps {
  store: ChildRunStore;
  job: Job;
  /** The lock token of this run: moving to waiting-children needs it. */
  token: string | undefined;
  tenant: string;
  /** `MAX_CHILDREN_PER_JOB`: children one job may start, all its spawns together. */
  maxChildren: number;
  log: Logger;
}

/** Failures that end a child for good, as its parent reports them. */
function childFailure(
  outcome: Extract<ChildOutcome, { status: 'failed' }>,
): Extract<SpawnOutcome, { status: 'failed' | 'cancelled' }> {
  const error = decodeFailure(outcome.reason);
  return { id: outcome.id, status: error.code === 'cancelled' ? 'cancelled' : 'failed', error };
}

/**
 * `ctx.spawn(children)` of one run. The first run that reaches a spawn validates the children,
 * then adds them as BullMQ children of the job, with their index entries and the job's record of
 * them (`lhC`), in one MULTI; then the job moves to BullMQ's waiting-children set and its run ends
 * (`WaitingChildrenError`): it holds no worker while they run. BullMQ moves it back to the queue
 * when its last child finishes, or, unless it continues on failure, when one fails for good
 * (`continueParentOnFailure`). The analysis then runs again from the top; this spawn finds its
 * children recorded, starts none, and resolves with their results in order.
 *
 * Spawns are told apart by their order in the run, like steps by name: an analysis must call
 * `spawn` in the same order on every run (put earlier phases in `ctx.step`).
 */
export function createSpawn({ store, job, token, tenant, maxChildren, log }: SpawnDeps): Spawn {
  const parentId = job.id ?? '';
  let calls = 0;

  function prepare(children: readonly SpawnChild[], spawned: number): NewChild[] {
    if (spawned + children.length > maxChildren) {
      throw new PermanentError(
        `the job started ${spawned + children.length} child jobs; the cap is ${maxChildren} (MAX_CHILDREN_PER_JOB)`,
        'too_many_children',
      );
    }
    const metadata = traceMetadata();
    // Children run at their parent's priority, in its trace; a failure is the parent's to judge.
    const priority = job.opts.priority;
    return children.map((child, i) => {
      const type: unknown = child?.type;
      if (typeof type !== 'string' || !isAnalysisName(type)) {
        throw new PermanentError(`child ${i + 1}: there is no analysis named "${String(type)}"`, 'invalid_input');
      }
      const contract = getContract(type);
      const parsed = contract.input.safeParse(child.input);
      if (!parsed.success) {
        const detail = parsed.error.issues.map((e) => `${e.path.join('.') || 'input'}: ${e.message}`).join('; ');
        throw new PermanentError(`child ${i + 1} (${type}): ${detail}`, 'invalid_input');
      }
      return {
        id: newJobId(),
        name: type,
        data: jobData(tenant, parsed.data),
        opts: { ...jobOptionsFor(contract, { priority }), ...(metadata ? { telemetry: { metadata } } : {}) },
      };
    });
  }

  async function spawn(children: readonly SpawnChild[], opts: SpawnOptions = {}): Promise<unknown[]> {
    if (!Array.isArray(children)) throw new PermanentError('ctx.spawn takes an array of children');
    if (children.length === 0) return [];
    const continueOnFailure = opts.continueOnFailure === true;
    const index = calls++;
    if (!token) throw new PermanentError('ctx.spawn needs the lock token of the run');

    const state = await store.state(parentId, token);
    // Another worker holds the job now (this one lost its lock): it spawns, not this one.
    if (state.kind === 'lost') throw new Error('the job lost its lock before it could start its children');
    let ids = state.batches[index];
    if (!ids) {
      const prepared = prepare(children, state.batches.flat().length);
      for (const child of prepared) {
        child.opts[continueOnFailure ? 'ignoreDependencyOnFailure' : 'continueParentOnFailure'] = true;
      }
      ids = prepared.map((c) => c.id);
      await store.add(parentId, tenant, [...state.batches, ids], prepared);
      log.info({ children: ids.length, spawn: index + 1 }, 'children started');
      await opts.onSpawned?.(ids);
    } else if (ids.length !== children.length) {
      throw new PermanentError(
        `spawn ${index + 1} was given ${children.length} children on this run and ${ids.length} on the run that started them; spawns must be called the same way on every run`,
      );
    }

    // At most twice: once before waiting, once more when the children finished while it was set up.
    for (let pass = 0; pass < 2; pass++) {
      const { parentCancelled, children: outcomes } = await store.outcomes(parentId, ids);
      if (parentCancelled) {
        // Cancelled while it spawned: children added after the cancel walked them are cancelled here.
        await store.cancelAll(tenant, parentId);
        throw new PermanentError('cancelled by request', 'cancelled');
      }
      const failed = outcomes.find((o) => o.status === 'failed');
      if (failed && failed.status === 'failed' && !continueOnFailure) {
        await store.cancelAll(tenant, parentId);
        const { status, error } = childFailure(failed);
        const what = status === 'cancelled' ? 'was cancelled' : `failed (${error.code})`;
        throw new PermanentError(`child ${failed.id} ${what}: ${error.message}`, 'child_failed');
      }
      const pending = outcomes.filter((o) => o.status === 'pending');
      if (pending.length === 0 || pass === 1) return settle(outcomes, continueOnFailure);

      // Wait for them without holding this worker: the run ends here, the job waits in BullMQ's
      // waiting-children set, and the worker takes another job.
      if (await job.moveToWaitingChildren(token)) {
        log.info({ pending: pending.length }, 'waiting for children');
        if (!continueOnFailure) {
          // A child that failed before the job was waiting could not release it: stop the others,
          // so that they finish now and the job comes back to fail.
          const late = await store.outcomes(parentId, ids);
          if (late.children.some((o) => o.status === 'failed')) await store.cancelAll(tenant, parentId);
        }
        throw new WaitingChildrenError();
      }
      // Not moved: no child is unfinished any more. Read their outcomes again.
    }
    throw new Error('unreachable');
  }

  /** Every child has an outcome, or none is left unfinished in BullMQ (one was removed meanwhile). */
  function settle(outcomes: ChildOutcome[], continueOnFailure: boolean): unknown[] {
    const ended = outcomes.map((o): SpawnOutcome => {
      if (o.status === 'completed') return { id: o.id, status: 'completed', result: o.result };
      if (o.status === 'failed') return childFailure(o);
      return {
        id: o.id,
        status: 'failed',
        error: { code: 'analysis_failed', message: 'the child job was removed before it finished' },
      };
    });
    if (continueOnFailure) return ended;
    const failed = ended.find((o) => o.status !== 'completed');
    if (failed) {
      throw new PermanentError(`child ${failed.id} ${failed.status}: ${failed.error.message}`, 'child_failed');
    }
    return ended.map((o) => (o.status === 'completed' ? o.result : undefined));
  }

  return spawn as Spawn;
}
