/**
 * The send stage against the raw POST limit, measured in alternation: the raw side (pre-built gzipped bodies POSTed
 * to the emulator), then an end-to-end full run of as many rows, `pairs` times over. On this shared machine either
 * rate moves by ±15% from one minute to the next, so a ratio of two figures measured minutes apart (the events
 * scenario early in the suite, the raw side in the comparison later) moves with it; each pair here is measured
 * back to back, and the target is checked on the pairs' median ratio.
 */
import { runSendComparison } from './amplitude-send';
import { runScenario, type BenchContext } from './e2e';
import type { BenchModelKind } from './support/generated-source';
import { WORKER_NODE_ARGS } from './support/processes';

/** One raw side and the send stage of the full run right after it. */
export interface SendPair {
  /** The raw side's rows per second. */
  raw: number;
  /** The end-to-end send stage's rows per second. */
  stage: number;
  /** stage / raw. */
  ratio: number;
}

export interface SendPairs {
  kind: BenchModelKind;
  rows: number;
  pairs: SendPair[];
  /** The median of the pairs' ratios. */
  medianRatio: number;
}

export interface SendPairsOptions {
  kind: BenchModelKind;
  rows: number;
  pairs: number;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Runs `pairs` × (raw side, end-to-end full run) of `rows` rows of one kind. */
export async function measureSendPairs(ctx: BenchContext, options: SendPairsOptions): Promise<SendPairs> {
  const pairs: SendPair[] = [];
  for (let i = 1; i <= options.pairs; i++) {
    ctx.log(`send stage against the raw limit, ${options.kind}: pair ${i} of ${options.pairs}`);
    const [raw] = await runSendComparison({
      // with the node flags a worker runs with, as in the side-by-side comparison
      launch: ctx.launch(WORKER_NODE_ARGS),
      amplitude: ctx.amplitude,
      rows: options.rows,
      sdkRows: 0,
      sides: [options.kind === 'events' ? 'raw-events' : 'raw-identifies'],
      log: (line) => ctx.log(line),
    });
    if (raw === undefined) throw new Error(`the raw ${options.kind} side gave no result`);
    const run = await runScenario(ctx, {
      label: `${options.kind}-${options.rows}-pair-${i}`,
      kind: options.kind,
      rows: options.rows,
      workers: 1,
      changedRun: false,
    });
    const rawRate = raw.rowsPerSecond;
    const stage = run.full.stages.send.rowsPerSecond;
    pairs.push({ raw: rawRate, stage, ratio: Math.round((stage / rawRate) * 1000) / 1000 });
    ctx.log(
      `  pair ${i}: send stage ${stage} vs raw ${rawRate} rows/s = ${Math.round((stage / rawRate) * 1000) / 10}%`,
    );
  }
  return { kind: options.kind, rows: options.rows, pairs, medianRatio: median(pairs.map((p) => p.ratio)) };
}
