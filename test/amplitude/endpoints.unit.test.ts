import {
  AMPLITUDE_API_SPECS,
  AMPLITUDE_APIS,
  PROJECT_THROTTLE_WAIT_MS,
  apiForSync,
  endpointUrl,
} from '../../src/amplitude/endpoints';
import { makeSync } from './support/sync';

describe('Amplitude endpoint table', () => {
  it('posts each API to its documented US and EU URL', () => {
    const urls = Object.fromEntries(
      AMPLITUDE_APIS.map((api) => [api, [endpointUrl(api, 'us'), endpointUrl(api, 'eu')]]),
    );
    expect(urls).toEqual({
      batch: ['https://api2.amplitude.com/batch', 'https://api.eu.amplitude.com/batch'],
      httpv2: ['https://api2.amplitude.com/2/httpapi', 'https://api.eu.amplitude.com/2/httpapi'],
      identify: ['https://api2.amplitude.com/identify', 'https://api.eu.amplitude.com/identify'],
      groupidentify: ['https://api2.amplitude.com/groupidentify', 'https://api.eu.amplitude.com/groupidentify'],
    });
  });

  it('replaces the host with a custom base URL, keeping its path prefix', () => {
    expect(endpointUrl('batch', 'eu', 'http://127.0.0.1:9700')).toBe('http://127.0.0.1:9700/batch');
    expect(endpointUrl('httpv2', 'us', 'https://proxy.example/amp/')).toBe('https://proxy.example/amp/2/httpapi');
  });

  it('pins the limits and throttle waits of each API', () => {
    expect(AMPLITUDE_API_SPECS).toEqual({
      httpv2: {
        path: '/2/httpapi',
        body: 'json',
        maxItemsPerRequest: 2000,
        maxBytesPerRequest: 1_000_000,
        throttleWaitMs: 30_000,
      },
      batch: {
        path: '/batch',
        body: 'json',
        maxItemsPerRequest: 2000,
        maxBytesPerRequest: 20_000_000,
        throttleWaitMs: 15_000,
      },
      identify: {
        path: '/identify',
        body: 'form',
        maxItemsPerRequest: 2000,
        maxBytesPerRequest: 1_000_000,
        throttleWaitMs: 15_000,
      },
      groupidentify: {
        path: '/groupidentify',
        body: 'form',
        maxItemsPerRequest: 1024,
        maxBytesPerRequest: 1_000_000,
        throttleWaitMs: 60_000,
      },
    });
    expect(PROJECT_THROTTLE_WAIT_MS).toBe(60_000);
  });

  it('chooses the API from the sync: Batch by default, Group Identify for groups, options.api otherwise', () => {
    expect(apiForSync(makeSync({ object: 'users' }))).toBe('batch');
    expect(apiForSync(makeSync({ object: 'users', options: { api: 'identify' } }))).toBe('identify');
    expect(
      apiForSync(
        makeSync({
          object: 'events',
          key: 'id',
          options: { api: 'httpv2' },
          mappings: [
            { from: 'user_id', to: 'user_id' },
            { constant: 'Signed Up', to: 'event_type' },
          ],
        }),
      ),
    ).toBe('httpv2');
    expect(
      apiForSync(
        makeSync({
          object: 'groups',
          key: 'account_id',
          groupType: 'account',
          mappings: [{ from: 'name', to: 'group_properties.name' }],
        }),
      ),
    ).toBe('groupidentify');
  });
});
