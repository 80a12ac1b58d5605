/**
 * A warehouse whose models are generated from their own text: `generated:users?rows=100000&seed=7&version=2`.
 * Every process (the test and each worker it starts and kills) computes the same rows from the same model, so
 * the test knows exactly what Amplitude must end up holding. Paging follows BigQuery's contract (tokens, resumable
 * positions); `delayMs` slows each page down so a kill can land during extraction.
 */
import type { ModelConfig } from '../../../src/config/schema';
import type {
  DryRunResult,
  OpenedModel,
  ReadPageOptions,
  Source,
  SourceField,
  SourcePage,
  SourcePosition,
  SourceRow,
} from '../../../src/sync/types';

export type GeneratedKind = 'users' | 'events';

/** What a generated model holds. */
export interface GeneratedModel {
  kind: GeneratedKind;
  rows: number;
  seed: number;
  /** Users: version v changes the rows whose `changeBucket` is below v - 1 (10% more per version). */
  version: number;
  /** Pause per page read, in ms. */
  delayMs: number;
}

/** The email domain of every generated user: row data that must never reach Temporal's history. */
export const EMAIL_DOMAIN = 'mailbox.reliability-private.example';
/** A plan value carried by some generated users (another value to look for in histories). */
export const SECRET_PLAN = 'platinum-hidden-tier';
export const EVENT_TYPE = 'Reliability Purchase';
const EPOCH_MS = Date.UTC(2026, 0, 1);

/** Deterministic 32-bit hash of (seed, i, salt). */
export function mix(seed: number, i: number, salt = 0): number {
  let h = (seed * 0x9e3779b1) ^ (i * 0x85ebca6b) ^ (salt * 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The model text of a generated model. */
export function generatedModel(model: Partial<GeneratedModel> & Pick<GeneratedModel, 'kind' | 'rows'>): ModelConfig {
  const m = { seed: 1, version: 1, delayMs: 0, ...model };
  return { sql: `generated:${m.kind}?rows=${m.rows}&seed=${m.seed}&version=${m.version}&delayMs=${m.delayMs}` };
}

export function parseGeneratedModel(model: ModelConfig): GeneratedModel {
  const text = 'sql' in model ? model.sql : model.table;
  const match = /^generated:(users|events)\?(.*)$/.exec(text);
  if (match === null) throw new Error(`not a generated model: ${text}`);
  const params = new URLSearchParams(match[2]);
  const num = (name: string, fallback: number): number => Number(params.get(name) ?? fallback);
  return {
    kind: match[1] as GeneratedKind,
    rows: num('rows', 0),
    seed: num('seed', 1),
    version: num('version', 1),
    delayMs: num('delayMs', 0),
  };
}

export const userId = (seed: number, i: number): string => `ru-${seed}-${String(i).padStart(7, '0')}`;

/** Which tenth of the users a row is in: version v changes buckets 0..v-2. */
const changeBucket = (seed: number, i: number): number => mix(seed, i, 1) % 10;

/** Row i of a users model. */
export function userRow(m: GeneratedModel, i: number): SourceRow {
  const changed = changeBucket(m.seed, i) < m.version - 1;
  const base = mix(m.seed, i, 2);
  return {
    user_id: userId(m.seed, i),
    email: `person.${i}@${EMAIL_DOMAIN}`,
    plan: changed
      ? `changed-v${m.version}`
      : i % 97 === 0
        ? SECRET_PLAN
        : (['free', 'starter', 'pro'][base % 3] as string),
    ltv: (base % 100_000) / 100 + (changed ? 1000 * m.version : 0),
  };
}

/** Row i of an events model (2,000 distinct users). */
export function eventRow(m: GeneratedModel, i: number): SourceRow {
  return {
    event_key: `ev-${m.seed}-${String(i).padStart(8, '0')}`,
    user_id: userId(m.seed, i % 2000),
    event_type: EVENT_TYPE,
    time: EPOCH_MS + i * 1000,
    amount: (mix(m.seed, i, 3) % 10_000) / 100,
  };
}

export function rowOf(m: GeneratedModel, i: number): SourceRow {
  return m.kind === 'users' ? userRow(m, i) : eventRow(m, i);
}

const field = (name: string, type = 'STRING'): SourceField => ({ name, type, mode: 'NULLABLE' });

export const SCHEMAS: Record<GeneratedKind, SourceField[]> = {
  users: [field('user_id'), field('email'), field('plan'), field('ltv', 'FLOAT64')],
  events: [
    field('event_key'),
    field('user_id'),
    field('event_type'),
    field('time', 'INT64'),
    field('amount', 'FLOAT64'),
  ],
};

/** The key column each model's rows are generated in ascending order of. */
const ORDERED_BY: Readonly<Record<GeneratedKind, string>> = { users: 'user_id', events: 'event_key' };

/** The Source over generated models. */
export class GeneratedSource implements Source {
  dryRun(model: ModelConfig): Promise<DryRunResult> {
    const m = parseGeneratedModel(model);
    return Promise.resolve({ bytesProcessed: m.rows * 64, schema: SCHEMAS[m.kind] });
  }

  open(model: ModelConfig, options: { jobId?: string; orderByKey?: string } = {}): Promise<OpenedModel> {
    const m = parseGeneratedModel(model);
    // the position carries the model, so a page can be read again by a process that never opened it
    const jobId = `${options.jobId ?? 'generated'}|${'sql' in model ? model.sql : model.table}`;
    // rows are generated in the order of their zero-padded keys: what BigQuery's extract ordered by key returns
    const keyOrdered = options.orderByKey !== undefined && options.orderByKey === ORDERED_BY[m.kind];
    return Promise.resolve({
      schema: SCHEMAS[m.kind],
      totalRows: m.rows,
      position: { jobId, pageToken: null, page: 0, rowsRead: 0, ...(keyOrdered ? { keyOrdered } : {}) },
    });
  }

  async readPage(position: SourcePosition, options: ReadPageOptions): Promise<SourcePage> {
    const m = parseGeneratedModel({ sql: position.jobId.slice(position.jobId.indexOf('|') + 1) });
    if (m.delayMs > 0) await new Promise((r) => setTimeout(r, m.delayMs));
    const start = position.pageToken === null ? 0 : Number(position.pageToken);
    const end = Math.min(start + options.pageSize, m.rows);
    const rows: SourceRow[] = [];
    for (let i = start; i < end; i++) rows.push(rowOf(m, i));
    return {
      rows,
      next: {
        jobId: position.jobId,
        pageToken: end < m.rows ? String(end) : null,
        page: position.page + 1,
        rowsRead: position.rowsRead + rows.length,
        ...(position.keyOrdered === true ? { keyOrdered: true } : {}),
      },
    };
  }
}
