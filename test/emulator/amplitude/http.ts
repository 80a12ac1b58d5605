/** Small HTTP helpers for the emulator tests (plain fetch against the loopback emulator). */
import * as http from 'node:http';
import { gzipSync } from 'node:zlib';

export const API_KEY = 'test-api-key';

export interface Answer {
  status: number;
  text: string;
  body: unknown;
  headers: Headers;
}

export interface PostOptions {
  /** Sent as-is instead of JSON.stringify(body). */
  raw?: string;
  gzip?: boolean;
  contentType?: string | null;
  headers?: Record<string, string>;
  /** Aborts the request (the client gives up; the emulator may still be handling it). */
  signal?: AbortSignal;
}

/** POSTs JSON (or a raw string) to the emulator and reads the answer. */
export async function post(base: string, path: string, body: unknown, options: PostOptions = {}): Promise<Answer> {
  const text = options.raw ?? JSON.stringify(body);
  const headers: Record<string, string> = { ...options.headers };
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  if (contentType !== null) headers['content-type'] = contentType;
  // a Buffer body keeps fetch from adding a Content-Type of its own
  let payload = Buffer.from(text);
  if (options.gzip === true) {
    payload = gzipSync(payload);
    headers['content-encoding'] = 'gzip';
  }
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers,
    body: payload,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const answer = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, text: answer, body: parsed, headers: res.headers };
}

/** The `code` of a failed fetch's cause (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET...). */
export async function failureCode(request: Promise<unknown>): Promise<string> {
  try {
    await request;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return cause?.code ?? 'no code';
  }
  throw new TypeError('the request was expected to fail');
}

/** POSTs a form-encoded Identify / Group Identify request. */
export async function postForm(base: string, path: string, fields: Record<string, string>): Promise<Answer> {
  return post(base, path, undefined, {
    raw: new URLSearchParams(fields).toString(),
    contentType: 'application/x-www-form-urlencoded',
  });
}

/** An event with a valid user id. */
export function event(userId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { event_type: 'Page Viewed', user_id: userId, ...extra };
}

/** Opens a fresh connection (no pooled socket) and resolves with the error code, or 'connected'. */
export function connectCode(base: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request(`${base}/batch`, { method: 'POST', agent: false }, (res) => {
      res.resume();
      resolve('connected');
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'no code'));
    req.end();
  });
}
