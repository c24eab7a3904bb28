import { readFileSync } from 'node:fs';
import { runCli } from './cli/program.ts';

// The CLI's composition root: the only place that reads the process' environment and exits.
// package.json is one level up from both src/main.ts and the built dist/cli.js, and is always
// in the published package.
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  version,
});
process.exitCode = code;
