import { MockActivityEnvironment } from '@temporalio/testing';
import { setTimeout as sleep } from 'node:timers/promises';
import { heartbeater } from '../../src/temporal/activity-context';

describe('heartbeater', () => {
  it('heartbeats at most once per spacing, and always when forced', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => beats.push(details));
    await env.run(async () => {
      const heartbeat = heartbeater(50);
      heartbeat(1);
      heartbeat(2);
      heartbeat(3, true);
      await sleep(80);
      heartbeat(4);
      heartbeat(5);
    });
    expect(beats).toEqual([1, 3, 4]);
  });

  it('does nothing outside an activity', () => {
    expect(() => heartbeater(0)('details', true)).not.toThrow();
  });
});
