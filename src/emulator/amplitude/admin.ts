/**
 * Admin HTTP API under /__emulator/ so other processes (CLI, demo, benchmarks) can inject faults
 * and inspect state:
 *
 *   POST /__emulator/faults/{throttle|silence|fail-rate|latency|reset-connections|byte-limit|down|forbidden|eps-limit|clear}
 *        body: the fault's options as JSON (e.g. {"status":503,"rate":0.5})
 *   POST /__emulator/reset
 *   GET  /__emulator/state?apiKey=K&include=events,users,groups,requests&offset=0&limit=100
 *   GET  /__emulator/user?id=ID[&apiKey=K]      GET /__emulator/group?type=T&value=V[&apiKey=K]
 */
import type * as http from 'node:http';
import { InvalidFaultError, downFaultSchema, parseFault } from './faults';
import type { AmplitudeEmulator } from './types';

/** Paths under this prefix belong to the admin API, never to the emulated Amplitude. */
export const ADMIN_PREFIX = '/__emulator/';

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parseBody(body: Buffer): unknown {
  const text = body.toString('utf8').trim();
  return text === '' ? {} : JSON.parse(text);
}

/** The fault setters reachable over HTTP, by path segment. */
function applyFault(emulator: AmplitudeEmulator, name: string, options: unknown, res: http.ServerResponse): boolean {
  // the setters validate `options` themselves (InvalidFaultError), so the casts only satisfy the compiler
  const given = options as never;
  switch (name) {
    case 'throttle':
      emulator.throttle(given);
      return true;
    case 'silence':
      emulator.silence(given);
      return true;
    case 'fail-rate':
      emulator.failRate(given);
      return true;
    case 'latency':
      emulator.latency(given);
      return true;
    case 'reset-connections':
      emulator.resetConnections(given);
      return true;
    case 'byte-limit':
      emulator.byteLimit(given);
      return true;
    case 'eps-limit':
      emulator.epsLimit(given);
      return true;
    case 'forbidden':
      emulator.forbidden();
      return true;
    case 'clear':
      emulator.clearFaults();
      return true;
    case 'down': {
      const fault = parseFault('down', downFaultSchema, options);
      // answer first: going down closes every connection, this one included
      res.once('finish', () => {
        emulator.down(fault).catch(() => undefined);
      });
      return true;
    }
    default:
      return false;
  }
}

function nonNegativeInt(value: string | null, fallback: number): number {
  const parsed = value === null ? Number.NaN : Number(value);
  return Number.isSafeInteger(parsed) && parsed >= 0 ? parsed : fallback;
}

function state(emulator: AmplitudeEmulator, query: URLSearchParams): Record<string, unknown> {
  const apiKey = query.get('apiKey') ?? undefined;
  const include = new Set((query.get('include') ?? '').split(',').filter((part) => part !== ''));
  const result: Record<string, unknown> = {
    projects: emulator.projects(),
    eventCount: emulator.eventCount(apiKey),
    duplicatesDropped: emulator.duplicatesDropped(apiKey),
    requestCount: emulator.requests().length,
  };
  if (include.has('events')) {
    const offset = nonNegativeInt(query.get('offset'), 0);
    const limit = nonNegativeInt(query.get('limit'), Number.MAX_SAFE_INTEGER);
    result.events = emulator.events(apiKey).slice(offset, offset + limit);
  }
  if (include.has('users')) result.users = emulator.users(apiKey);
  if (include.has('groups')) result.groups = emulator.groups(apiKey);
  if (include.has('requests')) result.requests = emulator.requests();
  return result;
}

/** Serves one admin request. */
export function handleAdmin(
  emulator: AmplitudeEmulator,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
  query: URLSearchParams,
  body: Buffer,
): void {
  const route = path.slice(ADMIN_PREFIX.length);
  const method = req.method ?? 'GET';
  const apiKey = query.get('apiKey') ?? undefined;
  if (method === 'GET' && route === 'state') return reply(res, 200, state(emulator, query));
  if (method === 'GET' && route === 'user') {
    const id = query.get('id');
    const profile = id === null ? undefined : emulator.user(id, apiKey);
    return profile === undefined
      ? reply(res, 404, { error: `no user profile for id "${id ?? ''}"` })
      : reply(res, 200, profile);
  }
  if (method === 'GET' && route === 'group') {
    const type = query.get('type') ?? '';
    const value = query.get('value') ?? '';
    const group = emulator.group(type, value, apiKey);
    return group === undefined
      ? reply(res, 404, { error: `no group profile for ${type}="${value}"` })
      : reply(res, 200, group);
  }
  if (method === 'POST' && route === 'reset') {
    emulator.reset();
    return reply(res, 200, { ok: true });
  }
  if (method === 'POST' && route.startsWith('faults/')) {
    const name = route.slice('faults/'.length);
    let options: unknown;
    try {
      options = parseBody(body);
    } catch {
      return reply(res, 400, { error: `invalid JSON body for fault "${name}"` });
    }
    try {
      if (!applyFault(emulator, name, options, res)) return reply(res, 404, { error: `unknown fault "${name}"` });
    } catch (err) {
      if (err instanceof InvalidFaultError) return reply(res, 400, { error: err.message });
      throw err;
    }
    return reply(res, 200, { ok: true });
  }
  return reply(res, 404, { error: `unknown admin route ${method} ${path}` });
}
