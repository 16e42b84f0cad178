import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityView, RotateAuthorityResponse, RotateIdentityKeyResponse, RotateWrappingKeyResponse } from '@tessera-broker/sdk/wire';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { cliFails, cliJson, type CliOptions } from '../support/cli.js';

// The rotation commands as an operator runs them (issue 13 §2); what they do is tested over HTTP in
// test/identity/key-rotation.test.ts. Each command is a Node start-up that opens the key store.
describe('tessera CLI: key rotation commands', { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let run: CliOptions;
  beforeAll(async () => {
    broker = await startTestBroker();
    run = { env: broker.cliEnv };
  });
  afterAll(() => broker?.close());

  it('identity rotate prints the new key URI; the identity id stays', async () => {
    const agent = await broker.provision('rotated-cli@acme.local');
    const rotated = await cliJson<RotateIdentityKeyResponse>(['identity', 'rotate', agent.address, '--grace', '5m', '--json'], run);
    expect(rotated.identity.identity_id).toBe(agent.identity_id);
    expect(rotated.key.key_uri).toMatch(/^pkcs11:/);
    expect(rotated.previous_key).toMatchObject({ key_uri: agent.key_uri });
    expect(Date.parse(rotated.previous_key.not_after!) - Date.parse(rotated.key.created_at)).toBe(300_000);
    const refused = await cliFails(['identity', 'rotate', agent.address, '--grace', 'soon'], run);
    expect(refused.stderr).toMatch(/^tessera: invalid_request: --grace/m);
  });

  it('authority rotate and secrets rotate-wrapping-key print what they replaced', async () => {
    const authority = await cliJson<RotateAuthorityResponse>(['authority', 'rotate', '--overlap', '1h', '--json'], run);
    expect(authority.kid).not.toBe(authority.previous_kid);
    const wrapping = await cliJson<RotateWrappingKeyResponse>(['secrets', 'rotate-wrapping-key', '--json'], run);
    expect(wrapping.key_uri).not.toBe(wrapping.previous_key_uri);
  });

  // Last: afterwards the data dir signs admin requests with the new key, env.admin with the old one.
  it('admin rotate-key switches the data dir to the new admin key', async () => {
    const rotated = await cliJson<RotateIdentityKeyResponse>(['admin', 'rotate-key', '--grace', '0', '--json'], run);
    expect(rotated.identity.address).toBe('admin@tessera.local');
    const state = JSON.parse(readFileSync(join(broker.cliEnv.TESSERA_DATA_DIR!, 'tessera.json'), 'utf8')) as { adminKeyUri?: string };
    expect(state.adminKeyUri).toBe(rotated.key.key_uri);
    // The old key is refused at once (grace 0); the data dir's admin commands work on with the new one.
    const listed = await cliJson<IdentityView[]>(['identity', 'list', '--json'], run);
    expect(listed.map((identity) => identity.address)).toContain('admin@tessera.local');
  });
});
