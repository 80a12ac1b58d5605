/**
 * The local services' lifecycle on a state folder of its own (its own ports): a running service is reused, one
 * asked to restart is stopped and started afresh (what the demo does to the BigQuery emulator every time).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { serviceStatus, startServices, stopServices, type ServicesOptions } from '../../src/dev/services';
import { freePort } from '../sources/bigquery/support';

let options: ServicesOptions;
const lines: string[] = [];

beforeAll(async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-services-'));
  options = {
    stateDir,
    bigqueryPort: await freePort(),
    bigqueryGrpcPort: await freePort(),
    only: ['bigquery'],
    log: (line) => lines.push(line),
  };
});

afterAll(async () => {
  await stopServices(options);
  fs.rmSync(options.stateDir!, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a running emulator is reused, and started afresh when asked to restart', async () => {
  const endpoints = await startServices(options);
  const first = serviceStatus(options).bigquery;
  expect(first).toBeDefined();
  expect(lines).toEqual(['bigquery: started']);

  await startServices(options);
  expect(serviceStatus(options).bigquery).toBe(first);
  expect(lines.at(-1)).toBe('bigquery: reused');

  await startServices({ ...options, restart: ['bigquery'] });
  const second = serviceStatus(options).bigquery;
  expect(lines.at(-1)).toBe('bigquery: restarted');
  expect(second).toBeDefined();
  expect(second).not.toBe(first);
  expect(alive(first!)).toBe(false);
  const answer = await fetch(
    `${endpoints.bigqueryEndpoint}/bigquery/v2/projects/${endpoints.bigqueryProject}/datasets`,
  );
  expect(answer.ok).toBe(true);
});
