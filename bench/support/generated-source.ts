/**
 * A warehouse whose models are generated from their own text, so a worker in another process computes the same
 * rows from the sync config alone: `bench:users?rows=1000000&revision=1`, `bench:events?rows=1010000`.
 * Users are the BigQuery emulator's synthetic users (src/dev/demo-data.ts, `syntheticUser(n, revision)`: revision 1
 * changes 1% of the rows); events are page views, and a later run of a grown table finds only the new rows new.
 */
import type { ModelConfig } from '../../src/config/schema';
import { syntheticUser } from '../../src/dev/demo-data';
import type {
  DryRunResult,
  OpenedModel,
  ReadPageOptions,
  Source,
  SourceField,
  SourcePage,
  SourcePosition,
  SourceRow,
} from '../../src/sync/types';

export type BenchModelKind = 'users' | 'events';

/** What a generated model holds. */
export interface BenchModel {
  kind: BenchModelKind;
  rows: number;
  /** Users: rows with n % 100 < revision differ from revision 0. */
  revision: number;
}

/** The model text is not `bench:KIND?...`. */
export class BenchModelError extends Error {
  override readonly name = 'BenchModelError';
}

const field = (name: string, type: string): SourceField => ({ name, type, mode: 'NULLABLE' });

/** Column schemas, as BigQuery would report them. */
export const BENCH_SCHEMAS: Readonly<Record<BenchModelKind, SourceField[]>> = {
  users: [
    field('user_id', 'STRING'),
    field('email_domain', 'STRING'),
    field('plan', 'STRING'),
    field('lifetime_value', 'NUMERIC'),
    field('trial_ends_at', 'TIMESTAMP'),
    field('activated_on', 'DATE'),
    field('sessions_30d', 'INT64'),
    field('account_id', 'STRING'),
  ],
  events: [
    field('event_id', 'STRING'),
    field('user_id', 'STRING'),
    field('occurred_at', 'INT64'),
    field('path', 'STRING'),
    field('referrer', 'STRING'),
    field('plan', 'STRING'),
    field('duration_ms', 'INT64'),
  ],
};

/** The model config of a generated model. */
export function benchModel(model: BenchModel): ModelConfig {
  return { sql: `bench:${model.kind}?rows=${model.rows}&revision=${model.revision}` };
}

/** Parses `bench:KIND?rows=N&revision=R`. */
export function parseBenchModel(text: string): BenchModel {
  const match = /^bench:(users|events)\?(.*)$/.exec(text);
  if (match === null) throw new BenchModelError(`not a generated bench model: "${text}"`);
  const params = new URLSearchParams(match[2]);
  const rows = Number(params.get('rows'));
  const revision = Number(params.get('revision') ?? 0);
  if (!Number.isSafeInteger(rows) || rows < 0) throw new BenchModelError(`bench model "${text}": bad rows`);
  return { kind: match[1] as BenchModelKind, rows, revision };
}

const EVENT_EPOCH_MS = Date.UTC(2026, 0, 1);
const PATHS = ['/', '/pricing', '/docs/getting-started', '/blog/reverse-etl', '/signup'];
const PLANS = ['free', 'starter', 'pro', 'enterprise'];
/** Distinct users the page views belong to. */
const EVENT_USERS = 100_000;

/** Page view i (0-based): about the width of a real product event. */
export function pageView(i: number): SourceRow {
  return {
    event_id: `pv_${String(i).padStart(9, '0')}`,
    user_id: `user_${String((i % EVENT_USERS) + 1).padStart(7, '0')}`,
    occurred_at: EVENT_EPOCH_MS + i * 37,
    path: PATHS[i % PATHS.length]!,
    referrer: i % 3 === 0 ? 'https://www.google.com/' : null,
    plan: PLANS[i % PLANS.length]!,
    duration_ms: (i * 7919) % 60_000,
  };
}

/** Row i (0-based) of a generated model. */
export function benchRow(model: BenchModel, i: number): SourceRow {
  return model.kind === 'users' ? syntheticUser(i + 1, model.revision) : pageView(i);
}

/** The Source over generated models; a position carries its model, so any process can read any page. */
export class GeneratedSource implements Source {
  dryRun(model: ModelConfig): Promise<DryRunResult> {
    const m = parseBenchModel(modelText(model));
    return Promise.resolve({ bytesProcessed: m.rows * 100, schema: BENCH_SCHEMAS[m.kind] });
  }

  open(model: ModelConfig, options: { jobId?: string } = {}): Promise<OpenedModel> {
    const text = modelText(model);
    const m = parseBenchModel(text);
    return Promise.resolve({
      schema: BENCH_SCHEMAS[m.kind],
      totalRows: m.rows,
      position: { jobId: `${options.jobId ?? 'bench'}|${text}`, pageToken: null, page: 0, rowsRead: 0 },
    });
  }

  readPage(position: SourcePosition, options: ReadPageOptions): Promise<SourcePage> {
    const m = parseBenchModel(position.jobId.slice(position.jobId.indexOf('|') + 1));
    const start = position.pageToken === null ? 0 : Number(position.pageToken);
    const end = Math.min(start + options.pageSize, m.rows);
    const rows: SourceRow[] = new Array<SourceRow>(end - start);
    for (let i = start; i < end; i++) rows[i - start] = benchRow(m, i);
    return Promise.resolve({
      rows,
      next: {
        jobId: position.jobId,
        pageToken: end < m.rows ? String(end) : null,
        page: position.page + 1,
        rowsRead: position.rowsRead + rows.length,
      },
    });
  }
}

function modelText(model: ModelConfig): string {
  return 'sql' in model ? model.sql : model.table;
}
