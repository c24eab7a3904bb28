import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, startSystem } from '../e2e/fixtures.ts';
import { trackChild } from '../support/child-registry.ts';
import { REPO_ROOT } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The package's `bin`, which runs the built CLI (the global setup builds packages/client). */
const BIN = 'packages/client/bin/longhaul.mjs';

/** Runs the CLI as a user would (`longhaul …`, the installed bin), off a terminal. */
function run(args: string[], env: Record<string, string>): Promise<Run> {
  return capture(process.execPath, [BIN, ...args], env);
}

/** The same inside a pseudo-terminal (`script` from util-linux), so stdout and stderr are TTYs. */
function runOnTty(args: string[], env: Record<string, string>): Promise<Run> {
  const quoted = ['node', BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return capture('script', ['-qfec', quoted, '/dev/null'], { ...env, TERM: 'xterm', COLUMNS: '100' });
}

function capture(cmd: string, args: string[], env: Record<string, string>): Promise<Run> {
  return start(cmd, args, env).done;
}

/** Starts a command; `stderr()` is what it wrote so far, `done` its exit code and output. */
function start(cmd: string, args: string[], env: Record<string, string>) {
  const child = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const done = new Promise<Run>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

/** A stack trace's frames, which a user of the CLI should never see. */
const STACK_FRAME = /^\s+at /m;

describe('the longhaul CLI against a real api and worker', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    system = await startSystem();
    env = { LONGHAUL_URL: system.api.url, LONGHAUL_API_KEY: KEY_A };
  });
  afterAll(async () => {
    await system?.stop();
  });

  it('when a job is submitted with --wait off a terminal, then progress comes as plain lines and it exits 0', async () => {
    // Steps 1.5 s apart: the worker writes a job's progress at most once a second within a step.
    const r = await run(['submit', 'simulate', '--input', '{"durationMs":3000,"steps":2}', '--wait'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^submitted job_/m);
    expect(r.stderr).toMatch(/^\[ 50%\] running: step 1 of 2/m);
    expect(r.stderr).not.toContain(String.fromCharCode(27)); // no terminal control codes in a pipe
    expect(r.stdout).toMatch(/^completed job_\w+ in \d+\.\ds$/m);
  });

  it('when --wait runs on a terminal, then a live progress bar with step and ETA is drawn', async () => {
    const r = await runOnTty(['submit', 'simulate', '--input', '{"durationMs":2000,"steps":5}', '--wait'], env);
    expect(r.code, r.stdout).toBe(0);
    // script merges both streams into its stdout.
    expect(r.stdout).toMatch(/[█░]{10,}/);
    expect(r.stdout).toMatch(/\d+% \| running: step \d of 5 \| ETA \d+s/);
    expect(r.stdout).toMatch(/completed job_/);
  });

  it('when --json is given, then stdout is the final job view as JSON', async () => {
    const input = join(tmpdir(), `lh-cli-input-${process.pid}.json`);
    await writeFile(input, JSON.stringify({ durationMs: 50 }));
    const r = await run(['--json', 'submit', 'simulate', '--input', `@${input}`, '--wait'], env);
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout);
    expect(view).toMatchObject({ type: 'simulate', status: 'completed' });

    const status = await run(['--json', 'status', view.id], env);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: view.id, status: 'completed' });
    const result = await run(['result', view.id], env);
    expect(JSON.parse(result.stdout)).toMatchObject({ attempt: 1 });
    const list = await run(['list', '--status', 'completed', '--limit', '100'], env);
    expect(list.stdout).toContain(view.id);
  });

  it('when a job fails, then --wait exits 1 and says why', async () => {
    const r = await run(['submit', 'simulate', '--input', '{"durationMs":10,"fail":"permanent"}', '--wait'], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^failed job_\w+: analysis_failed/m);
  });

  it('when a job is cancelled while watched, then watch exits 3', async () => {
    const submitted = await run(['submit', 'simulate', '--input', '{"durationMs":10}', '--delay-ms', '60000'], env);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^job_/);
    const watching = run(['watch', id], env);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const cancel = await run(['cancel', id], env);
    expect(cancel.stdout.trim()).toBe(`cancelled ${id}`);
    const r = await watching;
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^cancelled job_/m);
    expect((await run(['result', id], env)).code).toBe(3);
  });

  it('when Ctrl-C stops --wait or watch, then the CLI exits 130 with one line, no stack trace, and the job goes on', async () => {
    const submitted = await run(['submit', 'simulate', '--input', '{"durationMs":10}', '--delay-ms', '60000'], env);
    const id = submitted.stdout.trim();
    for (const args of [
      ['submit', 'simulate', '--input', '{"durationMs":10}', '--delay-ms', '60000', '--wait'],
      ['watch', id],
    ]) {
      const following = start(process.execPath, [BIN, ...args], env);
      // Following: the first line of progress is out.
      await waitFor(() => /\[ {2}0%\] delayed/.test(following.stderr()), { what: `${args[0]} to follow the job` });
      following.child.kill('SIGINT');
      const r = await following.done;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toMatch(/^longhaul: interrupted; job_\w+ goes on/m);
      expect(r.stderr).not.toMatch(STACK_FRAME);
      expect(r.stderr).not.toContain('LonghaulError');
    }
    expect((await run(['--json', 'status', id], env)).stdout).toContain('"status": "delayed"');
    await run(['cancel', id], env);
  });

  it('when --version is given, then it prints the package version and exits 0', async () => {
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'packages/client/package.json'), 'utf8'));
    const r = await run(['--version'], {});
    expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('when the command is misused or the input is invalid, then it exits 2 with a message', async () => {
    const badJson = await run(['submit', 'simulate', '--input', '{nope'], env);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/not valid JSON/);
    const badInput = await run(['submit', 'simulate', '--input', '{"durationMs":-1}'], env);
    expect(badInput.code).toBe(2);
    expect(badInput.stderr).toMatch(/validation_failed/);
    expect((await run(['frobnicate'], env)).code).toBe(2);
    const noKey = await run(['list'], { LONGHAUL_URL: system.api.url });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/LONGHAUL_API_KEY/);
    // Flags win over the environment.
    const wrongKey = await run(['--api-key', 'wrong-key-000000000000', 'list'], env);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/unauthorized/);
  });

  it('when schedules are managed from the CLI, then create, list, pause, resume and delete work and a bad cron exits 2', async () => {
    const created = await run(
      ['schedules', 'create', 'simulate', '--input', '{"durationMs":10}', '--cron', '0 3 * * *'],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    expect(id).toMatch(/^sch_\w{26}$/);
    const list = await run(['schedules', 'list'], env);
    expect(list.stdout).toContain(`${id}  simulate  cron "0 3 * * *" UTC`);
    expect((await run(['schedules', 'pause', id], env)).stdout).toMatch(/paused/);
    expect((await run(['schedules', 'resume', id], env)).stdout).toMatch(/next 20/);
    expect((await run(['--json', 'schedules', 'get', id], env)).stdout).toContain('"overlap": "skip"');
    expect((await run(['schedules', 'delete', id], env)).stdout).toMatch(/^deleted sch_/);
    expect((await run(['schedules', 'get', id], env)).code).toBe(1);
    const bad = await run(
      ['schedules', 'create', 'simulate', '--input', '{"durationMs":10}', '--cron', '0 3 * *'],
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cron/);
  });
});

describe('the longhaul CLI when LONGHAUL_URL is not a longhaul API', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    // A web app answering every path with its page, as an SPA fallback or a proxy's login page does.
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><p>the web app</p>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('when a 2xx answer is not JSON, then it exits 1 and says the server is not a longhaul API, without a stack trace', async () => {
    const r = await run(['status', 'job_01ARZ3NDEKTSV4RRFFQ69G5FAV'], { LONGHAUL_URL: base, LONGHAUL_API_KEY: KEY_A });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^longhaul: the server at http:\/\/127\.0\.0\.1:\d+ is not a longhaul API: .*text\/html/m);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('when nothing listens at LONGHAUL_URL, then it exits 1 and names the cause, not only "fetch failed"', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const r = await run(['list'], { LONGHAUL_URL: `http://127.0.0.1:${port}`, LONGHAUL_API_KEY: KEY_A });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  });
});
