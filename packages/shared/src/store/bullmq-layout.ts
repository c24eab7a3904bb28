import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

/**
 * Everything longhaul assumes about how BullMQ 6 lays a queue out in Redis, in one file: key
 * names, the job hash's fields, the fields we add to it, and how a job is added inside a script
 * or MULTI of ours. `bullmq-layout.int.test.ts` checks each assumption against the pinned BullMQ
 * version, so an upgrade that moves any of them fails there first. No other file builds a Redis
 * key.
 */

/**
 * A Lua pattern (quoted) whose capture is a job's tenant, read from its `data`, which starts with
 * it (`jobData`, job-store.ts; the contract test checks it).
 */
export const DATA_TENANT_LUA = `'^{"tenant":"([%w_%-]*)"'`;

/** BullMQ queue names. One Worker per queue. */
export const QUEUES = {
  /** Every analysis job; the job name is the analysis name. */
  analyses: 'analyses',
  /**
   * Webhook deliveries. Each is the BullMQ parent of the analysis job it reports on, so BullMQ
   * itself releases it, in the same script that finishes the child.
   */
  webhooks: 'webhooks',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/**
 * Fields longhaul adds to BullMQ's job hash. They live and die with the job: BullMQ deletes the
 * whole hash when retention removes the job, and never touches fields it does not know.
 */
export const OWN_FIELDS = {
  /** Epoch ms at which a cancel was asked for. */
  cancelledAt: 'lhc',
  /** The JSON checkpoint the job saved, read back on its next attempt. */
  checkpoint: 'lhk',
  /** The webhook URL given on submit. */
  webhookUrl: 'lhw',
  /**
   * The job's durable steps, without their results: a JSON array of
   * `{ name, status, attempt, startedAt, finishedAt? }` in the order they first started. Small, so
   * a status read takes it whole.
   */
  steps: 'lhS',
  /**
   * The child jobs the job started with `ctx.spawn`: a JSON array with one array of child ids per
   * spawn, in the order given. Written in the same MULTI that adds the children, so a job that
   * spawned knows it on every later run, and never spawns the same children twice.
   */
  children: 'lhC',
} as const;

/** The prefix of the field that holds a completed step's JSON result: `lhs:<step name>`. */
export const STEP_RESULT_FIELD_PREFIX = 'lhs:';

/** The job hash field that holds the stored result of the step `name`. */
export function stepResultField(name: string): string {
  return `${STEP_RESULT_FIELD_PREFIX}${name}`;
}

/**
 * The fields of BullMQ's job hash a status read needs, read with HMGET so that neither the input
 * (`data`) nor the result (`returnvalue`, only its length) is transferred.
 */
export const STATUS_FIELDS = [
  'name',
  'timestamp',
  'processedOn',
  'finishedOn',
  'failedReason',
  'atm',
  'progress',
  'opts',
  'priority',
  'stc',
  // BullMQ's repeatJobKey: the id of the job scheduler that made the job (our schedule id).
  'rjk',
  OWN_FIELDS.cancelledAt,
  OWN_FIELDS.webhookUrl,
  OWN_FIELDS.steps,
  // BullMQ's key of the job's parent: a parent analysis' job hash (a child of `ctx.spawn`), or a
  // webhook delivery's.
  'parentKey',
  // BullMQ's count of the times a worker took the job (attemptsStarted).
  'ats',
] as const;

/** Key names, all under the queue prefix (a `{hash-tag}` by default: one Cluster slot for all). */
export function layoutFor(prefix: string) {
  const queueKey = (queue: QueueName) => `${prefix}:${queue}`;
  const fair = `${prefix}:lh:fair:`;
  return {
    prefix,
    /** The queue's base key, as BullMQ's `parent.queue` option names a queue. */
    queueKey,
    /** BullMQ's job hash. */
    job: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}`,
    /** BullMQ's lock key of an active job (exists while a worker holds the job). */
    lock: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}:lock`,
    /** BullMQ's sorted set of delayed jobs (scheduled, or waiting out a retry backoff). */
    delayed: (queue: QueueName) => `${prefix}:${queue}:delayed`,
    /** BullMQ's wait list (pushed left, taken right). */
    wait: (queue: QueueName) => `${prefix}:${queue}:wait`,
    /** BullMQ's sorted set of prioritized waiting jobs. */
    prioritized: (queue: QueueName) => `${prefix}:${queue}:prioritized`,
    /** BullMQ's sorted set of job scheduler ids, scored by the due time of each one's next run. */
    jobSchedulers: (queue: QueueName) => `${prefix}:${queue}:repeat`,
    /** BullMQ's sorted set of parents waiting for their children (`moveToWaitingChildren`). */
    waitingChildren: (queue: QueueName) => `${prefix}:${queue}:waiting-children`,
    /**
     * BullMQ's sets of a parent job's children, each member the child's job hash key:
     * `dependencies` (a set of the unfinished ones), `processed` (a hash: key → the child's stored
     * result), `failed` (a hash: key → failure reason, of children added with
     * `ignoreDependencyOnFailure` or `continueParentOnFailure`). They live and die with the parent.
     */
    dependencies: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}:dependencies`,
    processed: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}:processed`,
    failedChildren: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}:failed`,
    /** BullMQ's events stream of a queue (QueueEvents reads it; XRANGE serves Last-Event-ID replays). */
    events: (queue: QueueName) => `${prefix}:${queue}:events`,

    /**
     * Ours: the directory of a tenant's index of job ids (listing; ownership of gone jobs, 410):
     * the lower bound of each bucket, whose ids are at `{this key}:{bound}` (see tenant-index.ts).
     */
    tenantIndex: (tenant: string) => `${prefix}:lh:tenant:${tenant}:index`,
    /** Ours, the earlier layout: a tenant's job ids in one sorted set; read until it expires. */
    legacyTenantJobs: (tenant: string) => `${prefix}:lh:tenant:${tenant}:jobs`,
    /** Ours: a tenant's unfinished job ids, scored by reservation time; its size is the backlog. */
    backlog: (tenant: string) => `${prefix}:lh:tenant:${tenant}:backlog`,
    /**
     * Ours: a tenant's stored bytes: field `total`, and per job that holds bytes (inline input,
     * result) `"{input},{result},{since}"`; see `STORAGE_LUA` in job-store.ts.
     */
    storageBytes: (tenant: string) => `${prefix}:lh:tenant:${tenant}:bytes`,
    /** Ours: `{ id, bodyHash }` of the request that first used an Idempotency-Key. */
    idempotency: (tenant: string, keyHash: string) => `${prefix}:lh:idem:${tenant}:${keyHash}`,
    /**
     * Ours: a tenant's submissions in the current rate-limit window, and when it ends (job-store.ts).
     * Its name changed with that layout (it was `lh:rate:`, a bare count), so an API of either
     * layout never reads the other's: while both run in a deploy, each counts on its own.
     */
    rate: (tenant: string) => `${prefix}:lh:rw:${tenant}`,
    /** Ours: a job's webhook delivery attempts, newest first and capped. */
    webhookDeliveries: (jobId: string) => `${prefix}:lh:webhook:${jobId}`,
    /** Ours: a schedule's own state (tenant, timing, template, counters); BullMQ holds its scheduler. */
    schedule: (scheduleId: string) => `${prefix}:lh:schedule:${scheduleId}`,
    /** Ours: the run ids of a schedule that a worker started (score 0; ids sort by due time). */
    scheduleRuns: (scheduleId: string) => `${prefix}:lh:schedule:${scheduleId}:runs`,
    /** Ours: the tenant of a deleted schedule, kept as long as its run list, so its runs stay listable. */
    deletedSchedule: (scheduleId: string) => `${prefix}:lh:schedule:${scheduleId}:deleted`,
    /** Ours: a tenant's schedule ids (score: creation time); its size is the schedule quota. */
    tenantSchedules: (tenant: string) => `${prefix}:lh:tenant:${tenant}:schedules`,
    /** Ours: the pub/sub channel on which the API asks workers to abort an active job. */
    cancelChannel: `${prefix}:lh:cancel`,
    /**
     * Ours: the prefix of every fair-share key (see fair-share.ts): `ready`, `capped`, `served`,
     * `seq`, `slots`, `workers`, `busy`, `lane:{tenant}`, `running:{tenant}`. The scripts append
     * the rest, so the tenant-named keys are built in Lua from this prefix.
     */
    fair,
    /** Ours: the tenants waiting for a turn; every fair-share script names it (one Cluster slot). */
    fairReady: `${fair}ready`,
    /** Ours: a tenant's parked jobs, waiting for their turn (see fair-share.ts). */
    fairLane: (tenant: string) => `${fair}lane:${tenant}`,
    /** Ours: a tenant's jobs handed to workers and not finished: its share in use. */
    fairRunning: (tenant: string) => `${fair}running:${tenant}`,
  };
}

export type Layout = ReturnType<typeof layoutFor>;

/**
 * A MULTI in which BullMQ's add scripts and ours run together ({@link queueMulti}). BullMQ's add
 * calls the transaction's `runCommand(name, args)`, which {@link queueMulti} provides.
 */
export type QueueMulti = ChainableCommander;

/** A Lua script of ours that runs inside a queue MULTI, beside BullMQ's add ({@link multiScript}). */
export interface MultiScript {
  readonly name: string;
  readonly lua: string;
}

const multiScripts: MultiScript[] = [];

/**
 * BullMQ's scripts that add a job: `addJobToTransaction` (redis-queue-backend.js) picks one by the
 * job's options (waiting for children, delayed, prioritized, or none of these) and queues it on
 * the transaction it is given, under the name `{script}:{BullMQ version}`.
 */
const BULL_ADD_SCRIPTS = ['addStandardJob', 'addPrioritizedJob', 'addDelayedJob', 'addParentJob'];

interface ScriptedConnection {
  scriptsSet: Record<string, { lua: string; numberOfKeys: number | null }>;
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void;
  multi(): ChainableCommander;
}

/** What each connection has had defined: BullMQ's add scripts, and how many of ours of each kind. */
const definedOn = new WeakMap<object, { bull: boolean; ours: number; adds: number; gates: number }>();

/**
 * A script for {@link runOnMulti}, defined as a command on each connection a queue MULTI runs on,
 * as BullMQ's own add scripts are: ioredis 5 then sends its text (EVAL) the first time on a
 * socket, and only its SHA1 (EVALSHA) after (`Script` in ioredis). As plain EVALs, the index's and
 * the fair share's scripts sent 2.4 to 10 kB of Lua with every submit, for Redis to hash again each
 * time. A NOSCRIPT (the server's scripts flushed while the socket stayed open) fails the MULTI's
 * scripts, which {@link execQueueMulti} loads again; a reconnect, after a restart or a failover,
 * starts over with the text. Call at module load, for a script of one key (KEYS[1]).
 */
export function multiScript(name: string, lua: string): MultiScript {
  const script = { name: `lh_${name}`, lua };
  multiScripts.push(script);
  return script;
}

/** The command `name` defined on `target` (a connection, or a MULTI of it), or `missing` thrown. */
function commandOn(target: object, name: string, missing: string): (...args: unknown[]) => unknown {
  const command = (target as Record<string, ((...args: unknown[]) => unknown) | undefined>)[name];
  if (!command) throw new Error(missing);
  return command;
}

/** Queues `script` with its key and `args` on a MULTI from {@link queueMulti}. */
export function runOnMulti(multi: QueueMulti, script: MultiScript, key: string, ...args: string[]): void {
  commandOn(multi, script.name, `the connection has no command ${script.name} (see multiScript)`).call(
    multi,
    key,
    ...args,
  );
}

interface ScriptText {
  numberOfKeys: number;
  lua: string;
}

/**
 * BullMQ's script `base` among those defined on a connection (`scriptsSet`), by the name BullMQ
 * gives it (`{script}:{version}`), with its keys and text; undefined when it is not there.
 */
function bullScript(
  scriptsSet: ScriptedConnection['scriptsSet'],
  base: string,
): { name: string; script: ScriptText } | undefined {
  const name = Object.keys(scriptsSet).find((defined) => defined.startsWith(`${base}:`));
  const script = name ? scriptsSet[name] : undefined;
  if (!name || !script || script.numberOfKeys === null) return undefined;
  return { name, script: { numberOfKeys: script.numberOfKeys, lua: script.lua } };
}

/** BullMQ's add scripts, by the name BullMQ calls them by (`{script}:{version}`): their keys and text. */
const bullAdds = new Map<string, ScriptText>();

/** Each {@link addScript} around each of BullMQ's add scripts, gated or not, by its command name: built once. */
const wrappedAdds = new Map<string, ScriptText>();

/**
 * A script of ours that runs in the same script as BullMQ's add of a job ({@link addScript}).
 */
export interface AddScript {
  readonly name: string;
  readonly lua: string;
}

const addScripts: AddScript[] = [];

/**
 * A script that adds a job with BullMQ's own add script, then runs `lua`, as one script: the job
 * and our writes for it are one atomic step, with no MULTI around them (a MULTI and its EXEC are
 * two commands more, and ioredis builds a pipeline for each). For each of BullMQ's four add
 * scripts, its text (the pinned version's, taken from the queue's connection) becomes a function
 * of the new script, and `lua` runs after it: it sees its own key as KEYS[1] and its own
 * arguments from ARGV[1] on, as a script of its own would, BullMQ's reply (the job's id) as
 * `added`, and what a gate handed on as `handed` ({@link addGate}; nil with none). A BullMQ error
 * code (negative: a parent that is gone, …) is an error reply, and `lua` does not run. BullMQ's
 * scripts read only KEYS and ARGV[1..3] by their index, never their length: the contract test adds
 * a job of each kind this way. Call at module load; run with {@link addWith},
 * {@link addWithOnMulti} or {@link gatedAddWith}.
 */
export function addScript(name: string, lua: string): AddScript {
  const script = { name: `lh_${name}`, lua };
  addScripts.push(script);
  return script;
}

/** A script of ours that decides, before BullMQ's add, whether a job is added ({@link addGate}). */
export interface AddGate {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

const addGates: AddGate[] = [];

/**
 * A script of ours that runs before BullMQ's add of a job, in the same script, and decides
 * whether it happens: `lua` sees its own keys as KEYS[1..numberOfKeys] and its own arguments from
 * ARGV[1] on, and returns `pass, reply, handed`. With `pass` false nothing is added and the
 * script answers `{ 0, reply }`; otherwise the job is added, the {@link addScript} after it runs
 * with `handed`, and the script answers `{ 1, reply, its reply }`. Its writes stand either way.
 * Call at module load; run with {@link gatedAddWith}.
 */
export function addGate(name: string, numberOfKeys: number, lua: string): AddGate {
  const gate = { name: `lh_${name}`, numberOfKeys, lua };
  addGates.push(gate);
  return gate;
}

/** `script` around BullMQ's add script `bullName`, behind `gate` if any: its command's name, keys and text. */
function wrappedAdd(script: AddScript, bullName: string, bull: ScriptText, gate?: AddGate): [string, ScriptText] {
  const name = `${gate ? `${gate.name}:` : ''}${script.name}:${bullName}`;
  let wrapped = wrappedAdds.get(name);
  if (!wrapped) {
    // Keys: BullMQ's, ours, the gate's. Arguments: BullMQ's, ours, the gate's, then the gate's
    // count and BullMQ's count last.
    const ours = bull.numberOfKeys + 1;
    const gated = gate
      ? `local function gate(KEYS, ARGV)
${gate.lua}
end
local gateArgs = tonumber(ARGV[n - 1])
local pass, gated, handed = gate({ unpack(KEYS, ${ours + 1}, ${ours + gate.numberOfKeys}) }, { unpack(ARGV, n - 1 - gateArgs, n - 2) })
if not pass then return { 0, gated } end
n = n - 1 - gateArgs`
      : 'local handed = nil';
    wrapped = {
      numberOfKeys: ours + (gate?.numberOfKeys ?? 0),
      lua: `local added
local function bull_add()
${bull.lua}
end
local function ours(KEYS, ARGV, handed)
${script.lua}
end
local n, bullArgs = #ARGV, tonumber(ARGV[#ARGV])
${gated}
added = bull_add()
if type(added) == 'number' and added < 0 then
  return redis.error_reply('ERR BullMQ refused to add the job (code ' .. added .. ')')
end
local reply = ours({ KEYS[${ours}] }, { unpack(ARGV, bullArgs + 1, n - 1) }, handed)
${gate ? 'return { 1, gated, reply }' : 'return reply'}`,
    };
    wrappedAdds.set(name, wrapped);
  }
  return [name, wrapped];
}

/**
 * Defines on `redis` BullMQ's four add scripts, their text taken once from the queue's own
 * connection (where BullMQ defines them: the pinned version's), and ours ({@link multiScript},
 * {@link addScript}).
 */
async function defineScripts(queue: Queue, redis: Redis | Cluster): Promise<ScriptedConnection> {
  const connection = redis as unknown as ScriptedConnection;
  let defined = definedOn.get(connection);
  if (!defined) {
    defined = { bull: false, ours: 0, adds: 0, gates: 0 };
    definedOn.set(connection, defined);
  }
  if (!defined.bull) {
    // BullMQ types its client through its own backend interface; with ioredis it is ioredis'
    // client behind BullMQ's proxy, which passes `scriptsSet` through.
    const { scriptsSet } = (await queue.backend.client) as unknown as ScriptedConnection;
    for (const base of BULL_ADD_SCRIPTS) {
      const found = bullScript(scriptsSet, base);
      if (!found) throw new Error(`BullMQ defines no script ${base}`);
      connection.defineCommand(found.name, found.script);
      bullAdds.set(found.name, found.script);
    }
    defined.bull = true;
  }
  if (defined.ours < multiScripts.length) {
    for (const { name, lua } of multiScripts.slice(defined.ours))
      connection.defineCommand(name, { numberOfKeys: 1, lua });
    defined.ours = multiScripts.length;
  }
  if (defined.adds < addScripts.length || defined.gates < addGates.length) {
    // Every add script, bare and behind every gate (defining one again replaces it alike).
    for (const script of addScripts) {
      for (const gate of [undefined, ...addGates]) {
        for (const [bullName, bull] of bullAdds) connection.defineCommand(...wrappedAdd(script, bullName, bull, gate));
      }
    }
    defined.adds = addScripts.length;
    defined.gates = addGates.length;
  }
  return connection;
}

/**
 * A MULTI on `redis` in which jobs are added to `queue` ({@link addToMulti}) in one transaction
 * with our writes. `redis` gets BullMQ's four add scripts and ours ({@link defineScripts}).
 *
 * Not a MULTI of the queue's connection: BullMQ defines its 64 scripts there, and ioredis' MULTI
 * (its `Pipeline` constructor) copies every script defined on its connection onto itself, which
 * was 4 % of a submission's CPU in the API. A MULTI of a connection with a handful of scripts
 * costs next to nothing.
 */
export async function queueMulti(queue: Queue, redis: Redis | Cluster): Promise<QueueMulti> {
  const connection = await defineScripts(queue, redis);
  const multi = connection.multi() as ChainableCommander & { runCommand?: typeof runCommand };
  multi.runCommand = runCommand;
  return multi;
}

/** Whether Redis refused a command, or a MULTI, because it no longer knows a script (NOSCRIPT). */
function forgotScripts(err: unknown): boolean {
  const errors = [err, ...((err as { previousErrors?: unknown[] }).previousErrors ?? [])];
  return errors.some((e) => e instanceof Error && e.message.startsWith('NOSCRIPT'));
}

/**
 * Sends the MULTI that `build` queues on a MULTI from {@link queueMulti}, and answers its replies
 * (a command's error is thrown). Redis answers NOSCRIPT for a script of a MULTI when it has
 * forgotten it (SCRIPT FLUSH) while this socket stayed open, and ioredis goes on sending that
 * script by its SHA: so the scripts are loaded again, on every master of a Cluster, and the MULTI
 * is built and sent once more. The first one may have written its other commands: they are sent
 * again, so they must be idempotent (a field set; BullMQ keeps a job it has already).
 */
export async function execQueueMulti(
  queue: Queue,
  redis: Redis | Cluster,
  build: (multi: QueueMulti) => Promise<void>,
): Promise<[Error | null, unknown][]> {
  for (let attempt = 1; ; attempt++) {
    const multi = await queueMulti(queue, redis);
    await build(multi);
    try {
      const results = (await multi.exec()) ?? [];
      for (const [err] of results) if (err) throw err;
      return results;
    } catch (err) {
      if (attempt > 1 || !forgotScripts(err)) throw err;
      // Every script a queue MULTI can hold (defineScripts defined them all on this connection).
      const scripts = [...bullAdds.values(), ...multiScripts, ...wrappedAdds.values()].map((script) => script.lua);
      const nodes = 'nodes' in redis ? redis.nodes('master') : [redis];
      await Promise.all(nodes.flatMap((node) => scripts.map((lua) => node.script('LOAD', lua))));
    }
  }
}

/**
 * What BullMQ's add calls on a transaction (`augmentTransaction` in its ioredis-client.js), as a
 * method of the MULTI: one function for every MULTI, not a closure per submit.
 */
function runCommand(this: ChainableCommander, name: string, args: unknown[]): ChainableCommander {
  commandOn(this, name, `BullMQ added a job with ${name}, which queueMulti does not define`).call(this, args);
  return this;
}

export interface NewJob {
  name: string;
  data: unknown;
  /** Options without `jobId`: BullMQ would store it again inside `opts`, for every job. */
  opts: Omit<JobsOptions, 'jobId'>;
  id: string;
  /**
   * When it was accepted (epoch ms): stored as the job's `timestamp`, so the view answered at once
   * shows the time later reads show. Not an option: BullMQ would store it in `opts` too.
   */
  timestamp?: number;
}

/**
 * BullMQ's own job for `job`, and how it is linked: with `parent`, as a child of that (already
 * added, or queued before it) parent; with `asParent`, waiting for its children.
 */
function bullJobFor(
  queue: Queue,
  job: NewJob,
  link: JobLink,
): { bullJob: Job; parentOpts: Parameters<Job['addJob']>[1] } {
  const opts: JobsOptions = { ...job.opts };
  let parentKey: string | undefined;
  if (link.parent) {
    const { queue: parentQueue, id } = link.parent;
    opts.parent = { id, queue: parentQueue.qualifiedName };
    parentKey = `${parentQueue.qualifiedName}:${id}`;
  }
  const bullJob = new Job(queue, job.name, job.data, opts, job.id);
  if (job.timestamp !== undefined) bullJob.timestamp = job.timestamp;
  return {
    bullJob,
    parentOpts: {
      ...(parentKey ? { parentKey, parentDependenciesKey: `${parentKey}:dependencies` } : {}),
      ...(link.asParent ? { addToWaitingChildren: true } : {}),
    },
  };
}

/** How a job added with {@link addToMulti} or {@link addWith} is linked to others. */
export interface JobLink {
  parent?: { queue: Queue; id: string };
  asParent?: boolean;
}

/**
 * Queues BullMQ's own add script for `job` on `multi`, exactly as FlowProducer does for a flow,
 * so the job is added in the same transaction as our writes. With `parent`, the job is added as a
 * child of that (already queued) parent; with `asParent`, the job waits for its children.
 */
export async function addToMulti(multi: QueueMulti, queue: Queue, job: NewJob, link: JobLink = {}): Promise<void> {
  const { bullJob, parentOpts } = bullJobFor(queue, job, link);
  await bullJob.addJob(multi as never, parentOpts);
}

/**
 * What adding a job with a script of ours after it takes: the queue, the job and its links, then
 * the script ({@link addScript}) with its key and arguments.
 */
type AddWith = [queue: Queue, job: NewJob, link: JobLink, script: AddScript, key: string, ...args: string[]];

/** A gate ({@link addGate}) with its keys, then its arguments. */
export type GateWith = [gate: AddGate, ...keysAndArgs: string[]];

/**
 * The command and arguments that add `job` with BullMQ's add script and run `script` after it
 * ({@link addScript}), behind `gate` if any: BullMQ's add is built as for a transaction, but
 * caught instead of queued.
 */
async function addCommand(
  gate: GateWith | undefined,
  ...[queue, job, link, script, key, ...args]: AddWith
): Promise<{ name: string; args: unknown[] }> {
  let caught: { name: string; args: unknown[] } | undefined;
  const catcher = {
    runCommand(name: string, bullArgs: unknown[]) {
      caught = { name, args: bullArgs };
      return 0;
    },
  };
  const { bullJob, parentOpts } = bullJobFor(queue, job, link);
  await bullJob.addJob(catcher as never, parentOpts);
  const bull = caught && bullAdds.get(caught.name);
  if (!caught || !bull) throw new Error(`BullMQ added a job with ${caught?.name}, which addScript does not wrap`);
  const keys = caught.args.slice(0, bull.numberOfKeys);
  const bullArgs = caught.args.slice(bull.numberOfKeys);
  if (!gate) {
    return {
      name: `${script.name}:${caught.name}`,
      args: [...keys, key, ...bullArgs, ...args, String(bullArgs.length)],
    };
  }
  const [{ name, numberOfKeys }, ...gateKeysAndArgs] = gate;
  const gateArgs = gateKeysAndArgs.slice(numberOfKeys);
  return {
    name: `${name}:${script.name}:${caught.name}`,
    args: [
      ...keys,
      key,
      ...gateKeysAndArgs.slice(0, numberOfKeys),
      ...bullArgs,
      ...args,
      ...gateArgs,
      String(gateArgs.length),
      String(bullArgs.length),
    ],
  };
}

const noAddCommand = (name: string) => `the connection has no command ${name} (see addScript)`;

/** Sends the add of `add` on `redis` now, behind `gate` if any; resolves with the script's reply. */
async function sendAdd(redis: Redis | Cluster, gate: GateWith | undefined, add: AddWith): Promise<unknown> {
  const connection = await defineScripts(add[0], redis);
  const { name, args } = await addCommand(gate, ...add);
  return commandOn(connection, name, noAddCommand(name)).apply(connection, args);
}

/**
 * Adds `job` to `queue` and runs `script` after it, in one script sent on `redis` now
 * ({@link addScript}); resolves with the script's reply.
 */
export function addWith(redis: Redis | Cluster, ...add: AddWith): Promise<unknown> {
  return sendAdd(redis, undefined, add);
}

/** What a gated add answered ({@link gatedAddWith}). */
export type GatedAdd = { added: false; gated: unknown } | { added: true; gated: unknown; reply: unknown };

/**
 * Runs `gate` ({@link addGate}), then, if it passes, adds `job` to `queue` and runs `script` after
 * it, in one script sent on `redis` now: the gate's reply, and the script's when the job was added.
 */
export async function gatedAddWith(redis: Redis | Cluster, gate: GateWith, ...add: AddWith): Promise<GatedAdd> {
  const [added, gated, reply] = (await sendAdd(redis, gate, add)) as [number, unknown, unknown?];
  return added === 1 ? { added: true, gated, reply } : { added: false, gated };
}

/**
 * Queues on `multi` (from {@link queueMulti}) the add of `job` to `queue` with `script` run after
 * it ({@link addScript}), in one transaction with the rest of `multi`.
 */
export async function addWithOnMulti(multi: QueueMulti, ...add: AddWith): Promise<void> {
  const { name, args } = await addCommand(undefined, ...add);
  commandOn(multi, name, noAddCommand(name)).apply(multi, args);
}

/**
 * BullMQ's scripts by which a Worker takes a job, and where each keeps the queue's key prefix and
 * its packed options (whose `token` is the lock the job is taken with), by ARGV index:
 * `moveToActive` takes the next job; `moveToFinished` ends an attempt (the job completed, or
 * failed for good) and takes the next job with the same token (redis-queue-backend.js). The
 * contract test takes jobs both ways.
 */
const BULL_TAKES = {
  moveToActive: { prefix: 1, opts: 3 },
  moveToFinished: { prefix: 7, opts: 8 },
} as const;
type BullTake = keyof typeof BULL_TAKES;

/** A script of ours that runs inside BullMQ's end of an attempt, before it ({@link rideOnCompletion}). */
export interface EndScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

/**
 * A script of ours that runs on each job BullMQ takes for a Worker, in the same script
 * ({@link startOnTake}). It sees the job's key as KEYS[1], and as ARGV the arguments it was
 * given, then the job's tenant, id, priority and lock token; its reply comes back with the job.
 * It can read the job's hash as BullMQ read it a moment before, in the same script, from the
 * Lua table `taken_job` (field → value): a field read from there costs Redis no command.
 */
export interface TakeScript {
  readonly name: string;
  readonly lua: string;
}

/** An {@link EndScript} of `numberOfKeys` keys. Call at module load. */
export function completionScript(name: string, numberOfKeys: number, lua: string): EndScript {
  return { name: `lh_${name}`, numberOfKeys, lua };
}

/** A {@link TakeScript}. Call at module load. */
export function takeScriptOf(name: string, lua: string): TakeScript {
  return { name: `lh_${name}`, lua };
}

/** A ride waiting for its job's end: the end script's keys and arguments. */
interface Ride {
  keys: string[];
  args: string[];
}

/** What a connection's Worker carries along BullMQ's scripts: its rides, by job id, and its take. */
interface Riders {
  /** The end script the rides run (one per connection). */
  end?: EndScript;
  rides: Map<string, Ride>;
  take?: {
    script: TakeScript;
    /** The wait list of the queue whose jobs it starts: the first key of BullMQ's take scripts. */
    waitKey: string;
    args: () => string[];
    taken: (id: string, reply: unknown) => void;
  };
}

const ridersOn = new WeakMap<object, Riders>();

/**
 * A list of our scripts' arguments as one argument, NUL between them ({@link workerLua} splits it
 * again); undefined when one holds a NUL, which would split it wrong. One argument instead of a
 * score: ioredis builds a command argument by argument (a Buffer for the whole command, since
 * BullMQ's packed options are one), which was 40 % of the cost of sending BullMQ's completion with
 * ours inside it. An empty list and a list of one empty string are the same.
 */
function packed(args: string[]): string | undefined {
  for (const arg of args) if (arg.includes('\0')) return undefined;
  return args.join('\0');
}

/**
 * BullMQ's `bull` take script (`base`), with ours around it, in one script. BullMQ's arguments
 * come first; then the end script's and the take script's, each list packed in one argument
 * ({@link packed}); then the count of BullMQ's. The end script runs first, with its keys after
 * BullMQ's, so that a slot it hands on is in the queue when BullMQ takes the next job; then
 * BullMQ's; then the take script, on the job BullMQ took, whose reply is added to BullMQ's as its
 * 5th element. Neither of ours can fail BullMQ's part: an end script that fails leaves the job to
 * BullMQ as if it had not been given, and a take script that fails leaves BullMQ's reply as it is
 * (the attempt then sends it by itself). BullMQ's scripts read KEYS and ARGV by index, never
 * their length.
 */
function workerLua(base: BullTake, bull: ScriptText, end?: EndScript, take?: TakeScript): string {
  const first = bull.numberOfKeys + 1;
  const { prefix, opts } = BULL_TAKES[base];
  const ending = end
    ? `local function ours(KEYS, ARGV)
${end.lua}
end
pcall(ours, { unpack(KEYS, ${first}, ${first + end.numberOfKeys - 1}) }, lh_fields(ARGV[bull_argc + 1]))`
    : '';
  const taking = take
    ? `if type(taken) == 'table' and type(taken[1]) == 'table' and type(taken[2]) == 'string' then
  -- The job's hash as BullMQ read it (HGETALL), in this script: the take script reads it here.
  local taken_job = {}
  for i = 1, #taken[1], 2 do taken_job[taken[1][i]] = taken[1][i + 1] end
  local function ours(KEYS, ARGV)
${take.lua}
  end
  local id = taken[2]
  local args = lh_fields(ARGV[bull_argc + 2])
  table.insert(args, string.match(taken_job['data'] or '', ${DATA_TENANT_LUA}) or '')
  table.insert(args, id)
  table.insert(args, taken_job['priority'] or '0')
  table.insert(args, tostring(cmsgpack.unpack(ARGV[${opts}]).token))
  local ok, reply = pcall(ours, { ARGV[${prefix}] .. id }, args)
  if ok then taken[5] = reply end
end`
    : '';
  return `local bull_argc = tonumber(ARGV[#ARGV])
-- A list of arguments packed in one, NUL between them.
local function lh_fields(packed)
  local fields = {}
  if packed == '' then return fields end
  for field in string.gmatch(packed .. '\\0', '([^%z]*)%z') do fields[#fields + 1] = field end
  return fields
end
${ending}
local function bull_take()
${bull.lua}
end
local taken = bull_take()
${taking}
return taken`;
}

/**
 * The riders of `redis`: on first use, BullMQ's take scripts on the connection (defined there by
 * BullMQ when its Worker connected) are each replaced by a command that, when a ride waits for
 * the job it ends or a take is started, runs ours around BullMQ's in one script, and BullMQ's own
 * otherwise. BullMQ defines a command only where none is, so it never puts its own back.
 * Undefined while BullMQ has not defined its scripts on `redis`.
 */
function ridersOf(redis: Redis | Cluster): Riders | undefined {
  const connection = redis as unknown as ScriptedConnection & Record<string, unknown>;
  const known = ridersOn.get(connection);
  if (known) return known;
  const bulls: { base: BullTake; name: string; script: ScriptText }[] = [];
  for (const base of Object.keys(BULL_TAKES) as BullTake[]) {
    const found = bullScript(connection.scriptsSet, base);
    if (!found) return undefined;
    bulls.push({ base, ...found });
  }
  const riders: Riders = { rides: new Map() };
  for (const { base, name: bullName, script: bull } of bulls) {
    const original = commandOn(connection, bullName, `BullMQ defines no script ${bullName}`);
    /** The command for BullMQ's script with this end and take around it, defined on first use. */
    const wrappedWith = (end?: EndScript, take?: TakeScript) => {
      const name = `lh_worker:${end?.name ?? ''}:${take?.name ?? ''}:${bullName}`;
      if (!connection.scriptsSet[name]) {
        connection.defineCommand(name, {
          numberOfKeys: bull.numberOfKeys + (end?.numberOfKeys ?? 0),
          lua: workerLua(base, bull, end, take),
        });
      }
      return commandOn(connection, name, `the connection has no command ${name}`);
    };
    // BullMQ calls it with one array: its keys, then its arguments (for an end, the job's id first).
    connection[bullName] = function taking(this: unknown, ...call: unknown[]) {
      const [args] = call;
      if (!Array.isArray(args)) return original.apply(this, call);
      const id = String(args[bull.numberOfKeys]);
      // A list that cannot be packed does not ride: the ride goes alone, the attempt starts alone.
      const found = base === 'moveToFinished' ? riders.rides.get(id) : undefined;
      const endArgs = found ? packed(found.args) : '';
      const ride = endArgs === undefined ? undefined : found;
      const open = riders.take?.waitKey === args[0] ? riders.take : undefined;
      const takeArgs = open ? packed(open.args()) : '';
      const take = takeArgs === undefined ? undefined : open;
      if (!ride && !take) return original.apply(this, call);
      if (ride) riders.rides.delete(id);
      const bullArgs = args.slice(bull.numberOfKeys);
      const command = wrappedWith(ride ? riders.end : undefined, take?.script);
      const reply = command.call(this, [
        ...args.slice(0, bull.numberOfKeys),
        ...(ride?.keys ?? []),
        ...bullArgs,
        ride ? endArgs : '',
        take ? takeArgs : '',
        String(bullArgs.length),
      ]) as Promise<unknown>;
      if (!take) return reply;
      return reply.then((taken) => {
        if (Array.isArray(taken) && typeof taken[1] === 'string' && taken[4] !== undefined) {
          take.taken(taken[1], taken[4]);
        }
        return taken;
      });
    };
  }
  ridersOn.set(connection, riders);
  return riders;
}

/**
 * Runs `script` with `keys` and `args` inside BullMQ's end of the attempt of job `id` (completed,
 * or failed for good), in one script with it and just before it, when the Worker on `redis` ends
 * it within this turn of the event loop: one command instead of two. Call from the processor, as
 * it returns. Otherwise (BullMQ retries the job, or moves it by another script, or has not
 * connected yet) `alone` is called in the next turn, to send the script by itself.
 */
export function rideOnCompletion(
  redis: Redis | Cluster,
  script: EndScript,
  id: string,
  keys: string[],
  args: string[],
  alone: () => void,
): void {
  const riders = ridersOf(redis);
  if (!riders) {
    alone();
    return;
  }
  if (riders.end && riders.end !== script) throw new Error(`rides of ${riders.end.name} run on this connection`);
  riders.end = script;
  const ride = { keys, args };
  riders.rides.set(id, ride);
  setImmediate(() => {
    if (riders.rides.get(id) !== ride) return;
    riders.rides.delete(id);
    alone();
  });
}

/**
 * From now on, each job BullMQ takes for a Worker on `redis` from the queue whose wait list is
 * `waitKey` runs `script` ({@link TakeScript}) in the script that takes it, with `args()` (read at
 * each take), and its reply is handed to `taken` before BullMQ sees the job. `false` while BullMQ
 * has not defined its scripts on `redis` (call once its Worker is ready).
 */
export function startOnTake(
  redis: Redis | Cluster,
  waitKey: string,
  script: TakeScript,
  args: () => string[],
  taken: (id: string, reply: unknown) => void,
): boolean {
  const riders = ridersOf(redis);
  if (!riders) return false;
  riders.take = { script, waitKey, args, taken };
  return true;
}

/**
 * The id BullMQ 6 gives each job a job scheduler makes: `repeat:{schedulerId}:{dueMillis}`
 * (`JobScheduler.getSchedulerNextJobId`). The due time has 13 digits until the year 2286, so a
 * schedule's run ids sort by due time.
 */
export const SCHEDULER_RUN_ID = /^repeat:(sch_[0-9A-HJKMNP-TV-Z]{26}):(\d{13})$/;

/**
 * The length of the `returnvalue` BullMQ stores for a job without a result (`null`). Defined with
 * the result codec, which never stores a result that short bare; the contract test checks it here.
 */
export { NO_RESULT_LENGTH } from '../result-codec.ts';

/**
 * Added to a lone tenant's job's priority band (fair-share.ts): above the API's 1–1000, far below
 * BullMQ's 2^21, so every score stays an exact integer (under 2^53).
 */
export const SOLO_BAND = 1024;

/** The band moves of `BULL_LUA` alone, for a script sent with every submit (see below). */
export const BULL_BANDS = `
local function bull_lower(Q, id)
  -- XX: a job not in the prioritized set is left alone (the reply is then nil).
  return redis.call('ZADD', Q .. 'prioritized', 'XX', 'INCR', ${SOLO_BAND} * 0x100000000, id) ~= false
end
local function bull_solo_head(Q)
  return redis.call('ZRANGEBYSCORE', Q .. 'prioritized', ${SOLO_BAND} * 0x100000000, '+inf', 'LIMIT', 0, 1)[1]
end
local function bull_solo_count(Q)
  return redis.call('ZCOUNT', Q .. 'prioritized', ${SOLO_BAND} * 0x100000000, '+inf')
end
local function bull_raise(Q, id)
  local pc = redis.call('INCR', Q .. 'pc')
  return redis.call('ZADD', Q .. 'prioritized', 'XX', 'CH', pc % 0x100000000, id) == 1
end
`;

/**
 * Lua functions over BullMQ's layout, for our scripts. `Q` is the queue's key prefix
 * (`{prefix}:analyses:`). A job parked for its tenant's turn (fair-share.ts) waits in BullMQ's
 * `waiting-children` set, the state a flow's parent is born in: no worker fetches it, no stalled
 * check or delayed-job timer looks at it, and it has no children, so BullMQ never releases it.
 *
 * - `bull_promote` releases a parked job as BullMQ 6.7 releases a parent whose last child ended
 *   (`includes/moveParentToWait.lua`, for a job without a delay), into the prioritized set, waking
 *   a worker; at priority band 0 (the score is BullMQ's priority counter alone), so jobs are taken
 *   in the order they were released. The job's own `priority` field is left as it is.
 * - `bull_unpromote` parks again a released job no worker has taken yet (the reverse).
 * - `bull_park_active` parks an active job its worker holds, as `moveToWaitingChildren-7.lua` moves
 *   one (less the check for pending children); the worker then throws `WaitingChildrenError`.
 * - `bull_busy` counts the jobs that hold or are about to take a worker slot: active, the wait
 *   list and band 0 (released jobs), which BullMQ serves before any job it prioritized itself
 *   (score `priority * 2^32 + counter`, priority >= 1).
 * - `bull_queued` counts every job waiting for a worker; `bull_load` those and the active ones.
 * - `bull_lower` moves a prioritized job to the solo band: its priority plus {@link SOLO_BAND}, so
 *   BullMQ serves it after every job at any API priority (1–1000), in its own priority order;
 *   `bull_solo_head` is the solo band's first job, `bull_solo_count` its size, and `bull_raise`
 *   moves a job to band 0 (a release, for a job already in the queue).
 *
 * The contract test checks them against the pinned BullMQ: a parked job is taken by a Worker
 * once promoted, in priority order; a job parked from active is left alone by BullMQ; band 0, the
 * API's priorities and the solo band are served in that order.
 */
export const BULL_LUA = `
local function bull_promote(Q, id, maxlen)
  if redis.call('ZREM', Q .. 'waiting-children', id) == 0 then return false end
  local meta = redis.call('HMGET', Q .. 'meta', 'paused', 'concurrency')
  local blocked = meta[1] or (meta[2] and redis.call('LLEN', Q .. 'active') >= tonumber(meta[2]))
  -- Band 0 of the prioritized set, whatever the job's own priority: released jobs are taken in
  -- the order the dispatcher released them (its fair order), ahead of any job added directly.
  local pc = redis.call('INCR', Q .. 'pc')
  redis.call('ZADD', Q .. 'prioritized', pc % 0x100000000, id)
  if not blocked then redis.call('ZADD', Q .. 'marker', 0, '0') end
  redis.call('XADD', Q .. 'events', 'MAXLEN', '~', maxlen, '*', 'event', 'waiting', 'jobId', id, 'prev', 'waiting-children')
  return true
end
local function bull_unpromote(Q, id, now)
  if redis.call('ZREM', Q .. 'prioritized', id) == 0 then return false end
  redis.call('ZADD', Q .. 'waiting-children', now, id)
  return true
end
local function bull_park_active(Q, id, token, now, maxlen)
  local jobKey = Q .. id
  if token ~= '0' then
    if redis.call('GET', jobKey .. ':lock') ~= token then return false end
    redis.call('DEL', jobKey .. ':lock')
    redis.call('SREM', Q .. 'stalled', id)
  end
  if redis.call('LREM', Q .. 'active', -1, id) < 1 then return false end
  -- The take that parks it started nothing: BullMQ counted it among the job's starts (ats).
  redis.call('HINCRBY', jobKey, 'ats', -1)
  redis.call('ZADD', Q .. 'waiting-children', now, id)
  redis.call('XADD', Q .. 'events', 'MAXLEN', '~', maxlen, '*', 'event', 'waiting-children', 'jobId', id, 'prev', 'active')
  return true
end
local function bull_queued(Q) return redis.call('LLEN', Q .. 'wait') + redis.call('ZCARD', Q .. 'prioritized') end
local function bull_load(Q) return redis.call('LLEN', Q .. 'active') + bull_queued(Q) end
local function bull_busy(Q)
  local band0 = redis.call('ZCOUNT', Q .. 'prioritized', '-inf', '(4294967296')
  return redis.call('LLEN', Q .. 'active') + redis.call('LLEN', Q .. 'wait') + band0
end
${BULL_BANDS}
local function bull_parked(Q, id) return redis.call('ZSCORE', Q .. 'waiting-children', id) ~= false end
local function bull_done(Q, id)
  local k = Q .. id
  return redis.call('EXISTS', k) == 0 or redis.call('HEXISTS', k, 'finishedOn') == 1
end
`;
