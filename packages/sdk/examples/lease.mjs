// Leases a PostgreSQL login from a Tessera broker, keeps it renewed while the agent works, and
// revokes it at the end (the role is dropped upstream).
//
//   npm install @tessera-broker/sdk pkcs11js
//   export TESSERA_URL=http://127.0.0.1:8700 TESSERA_KEY='pkcs11:token=tessera;object=agent%3Abilling-bot%40acme.local'
//   export TESSERA_PKCS11_PIN_FILE=<data dir>/softhsm/user.pin SOFTHSM2_CONF=<data dir>/softhsm/softhsm2.conf
//   node lease.mjs orders-db readonly --ttl 5m
//
// It runs until interrupted (Ctrl-C), or with --renewals N until the lease has been renewed N times.
import { parseArgs } from 'node:util';
import { createClient, isPostgresCredential } from '@tessera-broker/sdk';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { ttl: { type: 'string', default: '5m' }, renewals: { type: 'string' } },
});
const [backend, role] = positionals;
if (!backend || !role) {
  console.error('usage: node lease.mjs <backend> <role> [--ttl 5m] [--renewals N]');
  process.exit(2);
}

// The broker URL and key come from TESSERA_URL and TESSERA_KEY; options would override them.
const tessera = await createClient();
try {
  const lease = await tessera.lease(backend, { role, ttl: values.ttl });
  if (!isPostgresCredential(lease.credential)) throw new Error(`${backend} is not a PostgreSQL backend`);
  const { host, port, database, username } = lease.credential;
  console.log(`leased ${lease.id}: ${username}@${host}:${port}/${database}, expires ${lease.expiresAt.toISOString()}`);
  // The agent's work goes here: e.g. new pg.Client({ ...lease.credential, user: username }).

  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  process.once('SIGINT', finish);
  process.once('SIGTERM', finish);

  // Renews two thirds into each TTL, in the background.
  const enough = values.renewals === undefined ? Infinity : Number(values.renewals);
  let renewals = 0;
  const renewer = tessera.autoRenew(lease, {
    onRenew: (renewal) => {
      console.log(`renewed ${renewal.leaseId}, expires ${renewal.expiresAt.toISOString()}`);
      if (++renewals >= enough) finish();
    },
    onError: (error) => console.error(`renewal failed: ${error.message}`),
    onStop: (end) => {
      if (end.reason !== 'stopped') console.error(`renewing ended: ${end.reason}`);
      finish();
    },
  });
  // Renewal timers do not keep a process alive; the agent's work does. Here a timer stands in for it.
  const working = setInterval(() => {}, 60_000);
  await finished;
  clearInterval(working);
  await renewer.stop();

  const revoked = await tessera.revoke(lease.id);
  console.log(`revoked ${revoked.leaseId}: ${revoked.state}`);
} finally {
  // Stops renewing and closes the PKCS#11 session (or KMS client) it opened.
  await tessera.close();
}
