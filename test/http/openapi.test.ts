/**
 * The broker's OpenAPI document is generated from the route schemas, which are the SDK's wire
 * schemas (@tessera-broker/sdk/wire): served unauthenticated at /openapi.json and committed as
 * docs/openapi.json. Drift between the two fails here; `npm run openapi` rewrites the file.
 */
import { LeaseRecord, LeaseRequest, LeaseResponse } from '@tessera-broker/sdk/wire';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/** What JSON carries of a TypeBox schema (its symbol-keyed metadata does not travel). */
const json = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as unknown;

describe('OpenAPI document', () => {
  let broker: TestBroker;
  let document: { openapi: string; paths: Record<string, Record<string, any>> };

  beforeAll(async () => {
    broker = await startTestBroker();
    const response = await fetch(`${broker.url}/openapi.json`);
    expect(response.status).toBe(200);
    document = (await response.json()) as typeof document;
  });

  afterAll(async () => {
    await broker?.close();
  });

  it('is served without a proof and matches the committed docs/openapi.json', async () => {
    expect(document.openapi).toBe('3.1.0');
    await expect(`${JSON.stringify(document, null, 2)}\n`).toMatchFileSnapshot('../../docs/openapi.json');
  });

  it('describes the lease routes with the SDK wire schemas', () => {
    const issue = document.paths['/v1/leases']!.post;
    expect(issue.requestBody.content['application/json'].schema).toEqual(json(LeaseRequest));
    expect(issue.responses['201'].content['application/json'].schema).toEqual(json(LeaseResponse));
    const show = document.paths['/v1/leases/{id}']!.get;
    expect(show.responses['200'].content['application/json'].schema).toEqual(json(LeaseRecord));
    expect(show.responses['200'].content['application/json'].schema.properties.state.enum).toContain('pending');
  });

  it('is linked from the discovery document, and discovery needs no proof in it', async () => {
    const discovery = (await (await fetch(`${broker.url}/.well-known/tessera-configuration`)).json()) as { openapi_uri: string };
    expect(discovery.openapi_uri).toBe(`${broker.url}/openapi.json`);
    expect(document.paths['/.well-known/tessera-configuration']!.get.security).toEqual([]);
    expect(document.paths['/v1/whoami']!.get.security).toBeUndefined();
  });
});
