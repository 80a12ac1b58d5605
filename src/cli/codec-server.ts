/**
 * `ampsync codec-server`: Temporal's remote codec protocol, so the Temporal UI and CLI can show encrypted payloads.
 * POST /encode and POST /decode take and return `{"payloads":[{"metadata":{"k":"<base64>"},"data":"<base64>"}]}`;
 * CORS admits the UI's origin; with a token, requests must carry `Authorization: Bearer <token>`.
 *
 *   temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8888
 *   AMPSYNC_CODEC_KEY_FILE=keys npx ampsync codec-server --port 8888
 */
import { timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

/** Largest request body read (a history page of payloads stays well below). */
export const MAX_CODEC_BODY_BYTES = 16 * 1024 * 1024;
/** The local Temporal UI's origins, allowed by default. */
export const DEFAULT_UI_ORIGINS = ['http://127.0.0.1:8233', 'http://localhost:8233'];

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** 0 picks a free port. */
  port: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Browser origins allowed to call (the Temporal UI's); `*` allows any. */
  corsOrigins?: string[];
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Reports each failed request (never a payload). */
  onError?: (message: string) => void;
}

export interface CodecServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A payload as JSON: proto3 JSON of temporal.api.common.v1.Payload (bytes as base64). */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

/** A request the codec server refuses; `status` is the HTTP answer. */
class CodecRequestError extends Error {
  override readonly name = 'CodecRequestError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function fromJson(value: unknown, i: number): Payload {
  if (typeof value !== 'object' || value === null) throw new CodecRequestError(400, `payloads[${i}] is not an object`);
  const p = value as JsonPayload;
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) {
    if (typeof v !== 'string') throw new CodecRequestError(400, `payloads[${i}].metadata.${k} is not base64 text`);
    metadata[k] = Buffer.from(v, 'base64');
  }
  if (p.data !== undefined && typeof p.data !== 'string')
    throw new CodecRequestError(400, `payloads[${i}].data is not base64 text`);
  return { metadata, data: Buffer.from(p.data ?? '', 'base64') };
}

function toJson(payload: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(payload.metadata ?? {})) {
    if (v !== null && v !== undefined) metadata[k] = Buffer.from(v).toString('base64');
  }
  return { metadata, data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64') };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CODEC_BODY_BYTES) {
        reject(new CodecRequestError(413, `request body over ${MAX_CODEC_BODY_BYTES} bytes`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Starts the codec endpoint; resolves once it listens. */
export async function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  const origins = options.corsOrigins ?? DEFAULT_UI_ORIGINS;
  const host = options.host ?? '127.0.0.1';

  const corsHeaders = (req: http.IncomingMessage): Record<string, string> => {
    const origin = req.headers.origin;
    if (origin === undefined || !(origins.includes('*') || origins.includes(origin))) return {};
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'POST, OPTIONS',
      'access-control-allow-headers': 'content-type, x-namespace, authorization',
      'access-control-max-age': '600',
      vary: 'origin',
    };
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const cors = corsHeaders(req);
    const reply = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { ...cors, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method === 'OPTIONS') {
      res.writeHead(cors['access-control-allow-origin'] === undefined ? 403 : 204, cors).end();
      return;
    }
    const path = new URL(req.url ?? '/', 'http://codec').pathname;
    const verb = path.endsWith('/encode') ? 'encode' : path.endsWith('/decode') ? 'decode' : undefined;
    try {
      if (verb === undefined) throw new CodecRequestError(404, `no such route ${path}: POST /encode or /decode`);
      if (req.method !== 'POST') throw new CodecRequestError(405, `${req.method ?? '?'} ${path}: use POST`);
      if (options.token !== undefined) {
        const auth = req.headers.authorization ?? '';
        if (!auth.startsWith('Bearer ') || !sameToken(auth.slice('Bearer '.length), options.token)) {
          throw new CodecRequestError(401, `${path}: missing or wrong bearer token`);
        }
      }
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch (err) {
        if (err instanceof CodecRequestError) throw err;
        throw new CodecRequestError(400, `${path}: the body is not JSON`);
      }
      const list = (body as { payloads?: unknown } | null)?.payloads;
      if (!Array.isArray(list)) throw new CodecRequestError(400, `${path}: expected {"payloads": [...]}`);
      const payloads = list.map(fromJson);
      const out = verb === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
      reply(200, { payloads: out.map(toJson) });
    } catch (err) {
      const status = err instanceof CodecRequestError ? err.status : 400;
      const message = err instanceof Error ? err.message : String(err);
      options.onError?.(`codec server: ${req.method ?? '?'} ${path} answered ${status}: ${message}`);
      reply(status, { error: message });
    }
  };

  const server = http.createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
