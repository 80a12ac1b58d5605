/**
 * A Source over rows held in memory (or generated), with the same paging contract as BigQuery: page tokens,
 * resumable positions. For workflow tests where the BigQuery emulator would be too slow (200,000 rows).
 */
import type { ModelConfig } from '../../src/config/schema';
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

export class MemorySource implements Source {
  opened = 0;
  pagesRead = 0;

  constructor(
    private readonly schema: SourceField[],
    private rows: (i: number) => SourceRow,
    private count: number,
  ) {}

  /** Replaces the model's content (a "changed warehouse"). */
  setRows(rows: (i: number) => SourceRow, count: number): void {
    this.rows = rows;
    this.count = count;
  }

  dryRun(_model: ModelConfig): Promise<DryRunResult> {
    return Promise.resolve({ bytesProcessed: this.count * 100, schema: this.schema });
  }

  open(_model: ModelConfig): Promise<OpenedModel> {
    this.opened += 1;
    return Promise.resolve({
      schema: this.schema,
      totalRows: this.count,
      position: { jobId: `memory-${this.opened}`, pageToken: null, page: 0, rowsRead: 0 },
    });
  }

  readPage(position: SourcePosition, options: ReadPageOptions): Promise<SourcePage> {
    this.pagesRead += 1;
    const start = position.pageToken === null ? 0 : Number(position.pageToken);
    const end = Math.min(start + options.pageSize, this.count);
    const rows: SourceRow[] = [];
    for (let i = start; i < end; i++) rows.push(this.rows(i));
    return Promise.resolve({
      rows,
      next: {
        jobId: position.jobId,
        pageToken: end < this.count ? String(end) : null,
        page: position.page + 1,
        rowsRead: position.rowsRead + rows.length,
      },
    });
  }
}

export const field = (name: string, type = 'STRING'): SourceField => ({ name, type, mode: 'NULLABLE' });
