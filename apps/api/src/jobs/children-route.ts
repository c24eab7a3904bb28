import type { JobSnapshot, JobStore, JobView } from '@longhaul/shared';
import type { Request, Response } from 'express';
import { tenantOf } from '../http/auth.ts';
import { HttpError } from '../http/http-error.ts';
import { type ChildrenQuery, childrenQuerySchema, parseQuery } from './schemas.ts';

export interface ChildPage {
  children: JobView[];
  /** The last child id of this page, to pass as `cursor`; null on the last page. */
  nextCursor: string | null;
}

/**
 * A page of a parent's children (`ctx.spawn`), in the order it started them. The parent answers
 * 404/410 like every route (so another tenant's parent is a 404); its child ids are its own record
 * (`lhC`), and each child's view is read like any job's. A child that retention already removed
 * is left out of the page.
 */
export interface ChildrenDeps {
  store: Pick<JobStore, 'childIds' | 'snapshots'>;
  /** The tenant's job, or 404/410 (the job service's own check). */
  snapshot: (tenant: string, id: string) => Promise<JobSnapshot>;
  view: (s: JobSnapshot) => JobView;
}

export async function listChildren(
  { store, snapshot, view }: ChildrenDeps,
  tenant: string,
  parentId: string,
  q: ChildrenQuery,
): Promise<ChildPage> {
  await snapshot(tenant, parentId);
  const ids = await store.childIds(parentId);
  let from = 0;
  if (q.cursor) {
    const at = ids.indexOf(q.cursor);
    if (at < 0) {
      throw new HttpError(400, 'validation_failed', 'invalid query', [
        { path: 'cursor', message: 'not a child of this job' },
      ]);
    }
    from = at + 1;
  }
  const page = ids.slice(from, from + q.limit);
  const owned = await store.snapshots(tenant, page);
  const children = owned.flatMap((o) => (o.kind === 'job' ? [view(o.snapshot)] : []));
  const last = page.at(-1);
  return { children, nextCursor: from + q.limit < ids.length && last ? last : null };
}

/** `GET /v1/jobs/:id/children`; `id` is checked by the job routes first. */
export function childrenRoute(
  children: (tenant: string, id: string, q: ChildrenQuery) => Promise<ChildPage>,
  deadline: <T>(work: Promise<T>) => Promise<T>,
) {
  return async (req: Request, res: Response, id: string): Promise<void> => {
    res.json(await deadline(children(tenantOf(req), id, parseQuery(childrenQuerySchema, req.query))));
  };
}
