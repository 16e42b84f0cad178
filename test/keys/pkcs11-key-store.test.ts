import { randomUUID } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEd25519 } from '../../src/crypto/ed25519.js';
import { isTesseraError } from '../../src/errors.js';
import { Pkcs11KeyStore } from '../../src/keys/pkcs11-key-store.js';
import { acquirePkcs11Module, findTokenSlot, formatPkcs11Uri, parsePkcs11Uri, readPinFile } from '@tessera-broker/sdk/signers';
import { ensureSoftHsmToken } from '../../src/keys/softhsm.js';
import { describeKeyStoreContract } from '../contract/key-store.contract.js';
import { createTestToken, type TestToken } from '../support/softhsm.js';

let token: TestToken;
beforeAll(async () => {
  token = await createTestToken();
});
afterAll(async () => {
  await token.cleanup();
});

const openStore = () => Pkcs11KeyStore.open({ modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin });
const label = () => `pkcs11-test-${randomUUID()}`;

/** Opens the store, runs `body`, and always closes it. */
async function withStore<T>(body: (store: Pkcs11KeyStore) => Promise<T>): Promise<T> {
  const store = await openStore();
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}

describeKeyStoreContract('pkcs11 (SoftHSM2)', openStore);

describe('Pkcs11KeyStore on SoftHSM2', () => {
  it('keeps private and wrapping keys sensitive and never extractable', async () => {
    await withStore(async (store) => {
      const signingLabel = label();
      const wrappingLabel = label();
      await store.createSigningKey({ label: signingLabel });
      await store.createWrappingKey({ label: wrappingLabel });

      // Inspect the objects through a session of our own; the open store keeps the token logged in.
      const lease = await acquirePkcs11Module(token.modulePath);
      const { pkcs11 } = lease;
      const session = pkcs11.C_OpenSession(findTokenSlot(pkcs11, token.tokenLabel)!, pkcs11js.CKF_SERIAL_SESSION);
      try {
        const find = (objectClass: number, objectLabel: string) => {
          pkcs11.C_FindObjectsInit(session, [
            { type: pkcs11js.CKA_CLASS, value: objectClass },
            { type: pkcs11js.CKA_LABEL, value: objectLabel },
          ]);
          const found = pkcs11.C_FindObjects(session, 2);
          pkcs11.C_FindObjectsFinal(session);
          expect(found).toHaveLength(1);
          return found[0]!;
        };
        const flags = [
          pkcs11js.CKA_TOKEN,
          pkcs11js.CKA_PRIVATE,
          pkcs11js.CKA_SENSITIVE,
          pkcs11js.CKA_ALWAYS_SENSITIVE,
          pkcs11js.CKA_EXTRACTABLE,
          pkcs11js.CKA_NEVER_EXTRACTABLE,
        ];
        const expected = [true, true, true, true, false, true];
        for (const key of [find(pkcs11js.CKO_PRIVATE_KEY, signingLabel), find(pkcs11js.CKO_SECRET_KEY, wrappingLabel)]) {
          const values = pkcs11.C_GetAttributeValue(session, key, flags.map((type) => ({ type })));
          expect(values.map((attribute) => attribute.value[0] === 1)).toEqual(expected);
          expect(() => pkcs11.C_GetAttributeValue(session, key, [{ type: pkcs11js.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
        }
        const [keyType, sign] = pkcs11.C_GetAttributeValue(session, find(pkcs11js.CKO_PRIVATE_KEY, signingLabel), [
          { type: pkcs11js.CKA_KEY_TYPE },
          { type: pkcs11js.CKA_SIGN },
        ]);
        expect(keyType!.value.readBigUInt64LE(0)).toBe(0x40n); // CKK_EC_EDWARDS (a 64-bit CK_ULONG)
        expect(sign!.value[0]).toBe(1);
      } finally {
        pkcs11.C_CloseSession(session);
        lease.release();
      }
    });
  });

  it('round-trips RFC 7512 URIs for labels with reserved characters', async () => {
    await withStore(async (store) => {
      const agentLabel = `agent:billing-bot@acme.local;v=1 %ü/${randomUUID()}`;
      const signer = await store.createSigningKey({ label: agentLabel });
      expect(signer.uri).toMatch(/^pkcs11:token=tessera-test;object=agent%3Abilling-bot%40acme\.local%3Bv%3D1%20%25%C3%BC%2F[0-9a-f-]+$/);
      expect(parsePkcs11Uri(signer.uri)).toEqual({ token: token.tokenLabel, object: agentLabel });

      const reopened = await store.getSigner(signer.uri);
      expect(Buffer.from(reopened.publicKey)).toEqual(Buffer.from(signer.publicKey));
      const explicit = await store.getSigner(formatPkcs11Uri({ token: token.tokenLabel, object: agentLabel, type: 'private' }));
      expect(Buffer.from(explicit.publicKey)).toEqual(Buffer.from(signer.publicKey));

      const wrapping = await store.createWrappingKey({ label: `wrap:${agentLabel}` });
      expect(wrapping.uri).toMatch(/;type=secret-key$/);
      expect(parsePkcs11Uri(wrapping.uri)).toEqual({ token: token.tokenLabel, object: `wrap:${agentLabel}`, type: 'secret-key' });
    });
  });

  it('reports keys of another token or of the wrong type as key_not_found, and bad URIs as config_invalid', async () => {
    await withStore(async (store) => {
      const signer = await store.createSigningKey({ label: label() });
      const otherToken = signer.uri.replace('token=tessera-test', 'token=elsewhere');
      await expect(store.getSigner(otherToken)).rejects.toSatisfy(
        (e) => isTesseraError(e, 'key_not_found') && /token "elsewhere".*token "tessera-test"/.test(e.message),
      );
      await expect(store.getWrappingKey(signer.uri)).rejects.toSatisfy((e) => isTesseraError(e, 'key_not_found'));
      await expect(store.getSigner(`${signer.uri};type=secret-key`)).rejects.toSatisfy((e) => isTesseraError(e, 'key_not_found'));
      for (const bad of ['aws-kms:abc', 'pkcs11:token=tessera-test', 'pkcs11:token=a;object=%zz', 'pkcs11:token=a;token=b;object=c']) {
        await expect(store.getSigner(bad)).rejects.toSatisfy((e) => isTesseraError(e, 'config_invalid'));
      }
    });
  });

  it('refuses a label that already exists', async () => {
    await withStore(async (store) => {
      const taken = label();
      await store.createSigningKey({ label: taken });
      await expect(store.createSigningKey({ label: taken })).rejects.toSatisfy((e) => isTesseraError(e, 'conflict'));
      await expect(store.createWrappingKey({ label: taken })).rejects.toSatisfy((e) => isTesseraError(e, 'conflict'));
    });
  });

  it('signs correctly under 200 concurrent sign() calls', async () => {
    await withStore(async (store) => {
      const signers = [await store.createSigningKey({ label: label() }), await store.createSigningKey({ label: label() })];
      const jobs = Array.from({ length: 200 }, (_, i) => {
        const signer = signers[i % 2]!;
        const message = new TextEncoder().encode(`message ${i}`);
        return signer.sign(message).then((signature) => verifyEd25519(signature, message, signer.publicKey));
      });
      expect(await Promise.all(jobs)).toEqual(Array(200).fill(true));
    });
  });

  it('keeps working after a failed operation', async () => {
    await withStore(async (store) => {
      const wrapping = await store.createWrappingKey({ label: label() });
      const signer = await store.createSigningKey({ label: label() });
      const wrapped = await wrapping.wrap(new Uint8Array(32).fill(7));
      const tampered = Uint8Array.from(wrapped);
      tampered[20]! ^= 1;
      await expect(wrapping.unwrap(tampered)).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error') && /unwrap/.test(e.message));
      await expect(wrapping.unwrap(wrapped.subarray(0, 20))).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error'));
      expect(Buffer.from(await wrapping.unwrap(wrapped))).toEqual(Buffer.alloc(32, 7));
      const message = new Uint8Array([1]);
      expect(verifyEd25519(await signer.sign(message), message, signer.publicKey)).toBe(true);
    });
  });

  it('shares the module between stores and keeps working after one closes', async () => {
    const first = await openStore();
    const second = await openStore();
    try {
      const signer = await second.createSigningKey({ label: label() });
      await first.close();
      const message = new Uint8Array([9, 9, 9]);
      expect(verifyEd25519(await signer.sign(message), message, signer.publicKey)).toBe(true);
      await expect(first.getSigner(signer.uri)).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error'));
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('rejects a wrong PIN with a clear error that does not contain the PIN', async () => {
    const pin = `wrong-${randomUUID()}`;
    const error = await Pkcs11KeyStore.open({ modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin }).catch((e: unknown) => e);
    expect(isTesseraError(error, 'config_invalid')).toBe(true);
    expect((error as Error).message).toMatch(/tessera-test.*PIN.*CKR_PIN_INCORRECT/);
    expect((error as Error).message).not.toContain(pin);
    // The failed attempt released its hold on the module: a correct PIN still works.
    await withStore(async (store) => expect(store.describe()).toBe(`pkcs11 module=${token.modulePath} token=tessera-test`));
  });

  it('reports an unknown token as config_invalid', async () => {
    await expect(Pkcs11KeyStore.open({ modulePath: token.modulePath, tokenLabel: 'no-such-token', pin: token.pin })).rejects.toSatisfy(
      (e) => isTesseraError(e, 'config_invalid') && /no-such-token/.test(e.message),
    );
  });
});

describe('SoftHSM2 token setup', () => {
  it('refuses a PIN file readable by group or others and trims the trailing newline', () => {
    const file = join(token.dir, `test-${randomUUID()}.pin`);
    writeFileSync(file, '1234\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => readPinFile(file)).toThrow(expect.objectContaining({ code: 'config_invalid', message: expect.stringContaining(file) }));
    chmodSync(file, 0o600);
    expect(readPinFile(file)).toBe('1234');
  });

  it('is idempotent: a second call reuses the token and its PIN', async () => {
    const again = await ensureSoftHsmToken({ dir: token.dir, tokenLabel: token.tokenLabel });
    expect(again).toEqual({ confPath: token.confPath, modulePath: token.modulePath, tokenLabel: token.tokenLabel, pinFile: join(token.dir, 'user.pin') });
    expect(readPinFile(again.pinFile)).toBe(token.pin);
    expect(readPinFile(join(token.dir, 'so.pin'))).not.toBe(token.pin);
    expect(statSync(token.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(token.dir, 'so.pin')).mode & 0o777).toBe(0o600);
    expect(readFileSync(token.confPath, 'utf8')).toContain(`directories.tokendir = ${join(token.dir, 'tokens')}`);
    expect(process.env.SOFTHSM2_CONF).toBe(token.confPath);

    // Still exactly one token with that label, and the PIN still opens it.
    const lease = await acquirePkcs11Module(token.modulePath);
    try {
      const labels = lease.pkcs11.C_GetSlotList(true).map((slot) => lease.pkcs11.C_GetTokenInfo(slot).label.trimEnd());
      expect(labels.filter((l) => l === token.tokenLabel)).toHaveLength(1);
    } finally {
      lease.release();
    }
    await withStore(async (store) => expect((await store.createSigningKey({ label: label() })).publicKey).toHaveLength(32));
  });

  it('refuses a SOFTHSM2_CONF that points elsewhere', async () => {
    await expect(ensureSoftHsmToken({ dir: join(token.dir, 'other'), tokenLabel: 'other' })).rejects.toSatisfy(
      (e) => isTesseraError(e, 'config_invalid') && /SOFTHSM2_CONF/.test(e.message),
    );
  });
});
