import { runCli } from './cli/program.ts';

// The CLI's composition root: the only place that reads the process' environment and exits.
const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
process.exitCode = code;
