/**
 * Helpers for the BigQuery source tests: a private goccy emulator per test file (which a test may also stop and
 * restart) with a unique dataset, a loopback recorder, and a loopback proxy that injects failures and rewrites answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import type { SourceConfig } from '../../../src/config/schema';
import { toolPaths } from '../../../src/dev/services';
import { createBigQueryClient } from '../../../src/sources/bigquery/client';
import { uniqueName } from '../../support/env';

/**
 * A private emulator (in memory, free ports) with a fresh dataset, for one test file. The shared emulator's
 * googlesql heap only grows, and past 2 GiB it panics (first on DROP TABLE): tests keep their load off it.
 */
export async function testEmulator(prefix: string) {
  const emulator = await PrivateEmulator.start();
  const source = emulator.source();
  const bq = createBigQueryClient(source);
  const dataset = uniqueName(prefix);
  await bq.createDataset(dataset);
  return {
    emulator,
    bq,
    source,
    dataset,
    async cleanup(): Promise<void> {
      await emulator.dispose();
    },
  };
}

/** Runs a statement (DDL, DML or a query) to completion. */
export async function run(bq: BigQuery, query: string): Promise<void> {
  const [job] = await bq.createQueryJob({ query });
  await job.getQueryResults({ maxResults: 0, autoPaginate: false });
}

/** A free loopback port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** The request body, once it has arrived. */
  body: string;
}

/** A loopback HTTP server: records every request and answers via `handler` (default 404). */
export async function recorder(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => {
    res.writeHead(404).end();
  },
): Promise<{ url: string; host: string; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const recorded: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', body: '' };
    requests.push(recorded);
    req.on('data', (chunk: Buffer) => (recorded.body += chunk.toString('utf8')));
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A one-shot rule of the intercepting proxy: answer in place of the server, or forward and rewrite the answer. */
export interface Intercept {
  /** Only requests whose path matches (default: any). */
  path?: RegExp;
  method?: string;
  /** Answer with this instead of forwarding. */
  answer?: { status: number; body?: unknown; headers?: Record<string, string> };
  /** Forward, then rewrite the server's JSON answer. */
  rewrite?: (body: Record<string, unknown>) => Record<string, unknown>;
}

/** A loopback proxy to `target` that applies queued one-shot intercepts, and otherwise forwards. */
export async function interceptingProxy(target: string) {
  const queue: Intercept[] = [];
  const proxy = await recorder((req, res) => {
    const index = queue.findIndex(
      (rule) =>
        (rule.path === undefined || rule.path.test(req.url ?? '')) &&
        (rule.method === undefined || rule.method === req.method),
    );
    const rule = index >= 0 ? queue.splice(index, 1)[0] : undefined;
    if (rule?.answer !== undefined) {
      const { status, body, headers } = rule.answer;
      req.resume();
      const text = JSON.stringify(body ?? { error: { code: status, message: `injected ${status}`, errors: [] } });
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(text);
      return;
    }
    const upstream = http.request(
      `${target}${req.url ?? ''}`,
      { method: req.method, headers: { ...req.headers, host: new URL(target).host } },
      (answer) => {
        if (rule?.rewrite === undefined) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = JSON.stringify(
            rule.rewrite?.(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>),
          );
          res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json' }).end(body);
        });
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  return {
    ...proxy,
    intercept: (...rules: Intercept[]) => queue.push(...rules),
    pending: () => queue.length,
    /** Forgets the rules no request used. */
    clear: () => void queue.splice(0),
  };
}

/** A goccy emulator of the test's own on free loopback ports, which a test may stop and start again. */
export class PrivateEmulator {
  private child: ChildProcess | undefined;
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-bq-'));

  private constructor(
    readonly port: number,
    readonly grpcPort: number,
    private readonly persistent: boolean,
  ) {}

  /** `persistent`: keep the data in a database file, so that it survives a restart (default: in memory). */
  static async start(options: { persistent?: boolean } = {}): Promise<PrivateEmulator> {
    const emulator = new PrivateEmulator(await freePort(), await freePort(), options.persistent ?? false);
    await emulator.startProcess();
    return emulator;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  source(overrides: Partial<SourceConfig> = {}): SourceConfig {
    return { type: 'bigquery', project: 'ampsync-dev', apiEndpoint: this.endpoint, ...overrides };
  }

  async startProcess(): Promise<void> {
    const bin = toolPaths().bigqueryEmulator;
    const child = spawn(
      bin,
      [
        '--project=ampsync-dev',
        '--host=127.0.0.1',
        `--port=${this.port}`,
        `--grpc-port=${this.grpcPort}`,
        ...(this.persistent ? [`--database=${path.join(this.dir, 'bigquery.db')}`] : []),
        '--log-level=error',
      ],
      { stdio: 'ignore', env: { ...process.env, BIGQUERY_EMULATOR_HOST: undefined } },
    );
    this.child = child;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`the private BigQuery emulator exited with code ${child.exitCode}`);
      const ok = await fetch(`${this.endpoint}/bigquery/v2/projects/ampsync-dev/datasets`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the private BigQuery emulator did not answer on ${this.endpoint} within 30 s`);
  }

  async stopProcess(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async dispose(): Promise<void> {
    await this.stopProcess();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
