/**
 * Compiles the sources a benchmark child runs (src/, activities/, workflows/, bench/support/) to plain CommonJS,
 * file by file as tsc would, so workers and the emulator run compiled JavaScript as the installed CLI does (the tsx
 * loader alone would add ~45 MB to every process it measures).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';
import { ROOT } from './processes';

/** Where the compiled tree goes (inside node_modules, so packages resolve as from the sources). */
export const COMPILED_DIR = path.join(ROOT, 'node_modules', '.cache', 'ampsync-bench', 'js');
const SOURCE_DIRS = ['src', 'activities', 'workflows', 'bench/support'];

function sourcesIn(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.join(ROOT, dir, f));
}

/** Compiles the tree; returns the path of a compiled file for a source path relative to the root. */
export async function compileForBench(): Promise<(source: string) => string> {
  fs.rmSync(COMPILED_DIR, { recursive: true, force: true });
  await build({
    entryPoints: SOURCE_DIRS.flatMap(sourcesIn),
    outdir: COMPILED_DIR,
    outbase: ROOT,
    bundle: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
  });
  return (source) => path.join(COMPILED_DIR, source.replace(/\.ts$/, '.js'));
}
