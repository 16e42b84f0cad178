/**
 * Child process of the audit bench: verifies the generated log and reports time and peak RSS, so
 * that the figure is the verifier's own memory, not the generator's.
 * argv: <sqlite path> <jwks json>; prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { exportRecords } from '../src/audit/export.js';
import { verifyAuditLog } from '../src/audit/verify.js';
import { openStore } from '../src/store/database.js';

const [path, jwksJson] = process.argv.slice(2) as [string, string];
const jwks = JSON.parse(jwksJson) as JSONWebKeySet;
const store = await openStore(`sqlite:${path}`, { create: false });
const start = performance.now();
const report = await verifyAuditLog(exportRecords(store.repos, { issuer: 'bench', jwks, exportedAt: Date.now() }));
const elapsedMs = performance.now() - start;
await store.close();
const peak = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
process.stdout.write(`${JSON.stringify({ report, elapsedMs, peakRssBytes: peak ? Number(peak[1]) * 1024 : null })}\n`);
