/** The CLI's output helpers in a real process: a reader that closes the pipe ends the command quietly. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const FORMAT = path.join(__dirname, '..', '..', 'src', 'cli', 'format.ts');

/** A process printing a line every 5 ms, as `ampsync run` prints progress, with or without the helper. */
const PROGRAM = `
require('tsx/cjs');
const { exitQuietlyWhenOutputCloses } = require(${JSON.stringify(FORMAT)});
if (process.argv[1] === 'helper') exitQuietlyWhenOutputCloses();
let i = 0;
setInterval(() => console.log('line ' + i++), 5);
`;

/** Runs the program, takes its first output and closes the pipe (as `| head -1` does); its exit code and stderr. */
async function readFirstAndClose(mode: 'helper' | 'none'): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['-e', PROGRAM, mode], { env: { ...process.env, NODE_OPTIONS: '' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const first = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
  expect(first).toMatch(/^line 0/);
  child.stdout.destroy();
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    return { code: await exited, stderr };
  } finally {
    clearTimeout(timer);
  }
}

test('output piped to a reader that goes away: the command ends quietly, exit code 0', async () => {
  const { code, stderr } = await readFirstAndClose('helper');
  expect(code).toBe(0);
  expect(stderr).toBe('');
});

test('without the helper the same process dies of an unhandled EPIPE (what the helper prevents)', async () => {
  const { code, stderr } = await readFirstAndClose('none');
  expect(code).not.toBe(0);
  expect(stderr).toMatch(/EPIPE/);
});
