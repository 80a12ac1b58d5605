/**
 * A tiny loopback HTTP server for wire-level client tests: records every request (body decompressed) and
 * answers what the test's `respond` returns — a status and body, extra headers, a delay, or a reset socket.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface RecordedRequest {
  /** Arrival, ms since the epoch. */
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Body as sent, decompressed when gzipped. */
  body: string;
  /** Events (JSON APIs) or identifications (form APIs) carried. */
  items: Record<string, unknown>[];
  apiKey: string | undefined;
  /** `options` of a JSON body. */
  options?: unknown;
}

export interface CannedAnswer {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  delayMs?: number;
  /** Destroy the socket without answering (a connection reset). */
  reset?: boolean;
}

export interface CannedServer {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1; `respond` gets each request and its 0-based number. */
export async function startCannedServer(
  respond: (req: RecordedRequest, n: number) => CannedAnswer | Promise<CannedAnswer> = () => ({}),
): Promise<CannedServer> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const raw = Buffer.concat(chunks);
        const body = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        const recorded = record(req, body);
        const n = requests.push(recorded) - 1;
        const answer = await respond(recorded, n);
        if (answer.delayMs !== undefined) await new Promise((r) => setTimeout(r, answer.delayMs));
        if (answer.reset === true) {
          req.socket.destroy();
          return;
        }
        const status = answer.status ?? 200;
        const payload =
          answer.body === undefined
            ? JSON.stringify({ code: status, events_ingested: recorded.items.length })
            : typeof answer.body === 'string'
              ? answer.body
              : JSON.stringify(answer.body);
        res.writeHead(status, { 'content-type': 'application/json', ...answer.headers });
        res.end(payload);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function record(req: http.IncomingMessage, body: string): RecordedRequest {
  const base = { at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
  if (String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(body);
    const identification = form.get('identification');
    return {
      ...base,
      apiKey: form.get('api_key') ?? undefined,
      items: identification === null ? [] : (JSON.parse(identification) as Record<string, unknown>[]),
    };
  }
  const json = JSON.parse(body) as { api_key?: string; events?: Record<string, unknown>[]; options?: unknown };
  return { ...base, apiKey: json.api_key, items: json.events ?? [], options: json.options };
}
