/**
 * Backend types by name. Each entry validates the type-specific part of `POST /v1/admin/backends`,
 * splits it into settings stored in clear and the root secret the broker seals, and builds a live
 * CredentialBackend from the two. Keyed by BackendType, so a type without an entry fails to compile.
 */
import { z } from 'zod';
import { TesseraError } from '../errors.js';
import type { CredentialBackend } from './credential-backend.js';
import { HTTP_API_FACTORIES } from './http-api/factories.js';
import type { ScopePreset } from './http-api/scopes.js';
import { databaseOf, defaultRoles, PostgresBackend, type PostgresRoleConfig } from './postgres-backend.js';

export type BackendType = 'postgres' | keyof typeof HTTP_API_FACTORIES;

/** What a backend instance may need from the broker around it. */
export interface BackendContext {
  /** The credential proxy's public URL: the `base_url` of proxied leases. */
  readonly proxyUrl: string;
}

/** Settings stored in clear: JSON, never a secret. */
export type BackendSettings = Readonly<Record<string, unknown>>;

export interface BackendFactory {
  /** Validates the admin's type-specific fields (snake_case, as on the wire) for the backend `name`. */
  parse(input: Readonly<Record<string, unknown>>, name: string): { settings: BackendSettings; rootSecret: string };
  /** Role (or scope) names the settings define. */
  roles(settings: BackendSettings): string[];
  create(settings: BackendSettings, rootSecret: string, context: BackendContext): CredentialBackend;
  /** Proxied types: the scope preset a role names, whose constraints grants may set. */
  preset?(settings: BackendSettings, role: string): ScopePreset | undefined;
}

const statements = z.array(z.string().min(1).max(4096)).max(64);

const postgresRoleInput = z
  .object({ creation_statements: statements.min(1), revocation_statements: statements.optional(), renew_statements: statements.optional() })
  .strict();

const postgresInput = z
  .object({
    connection_url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').max(2048),
    roles: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'role names are 1-63 of A-Z a-z 0-9 _ . -'), postgresRoleInput).optional(),
  })
  .strict();

// Settings stored before group roles have no `group`: their roles keep their per-lease GRANTs.
const postgresSettings = z.object({
  roles: z.record(
    z.string(),
    z.object({
      group: z.object({ name: z.string(), privilegeStatements: statements }).optional(),
      creationStatements: statements,
      revocationStatements: statements.optional(),
      renewStatements: statements.optional(),
    }),
  ),
});

const postgres: BackendFactory = {
  parse(input, name) {
    const parsed = postgresInput.parse(input);
    const roles: Record<string, PostgresRoleConfig> = parsed.roles
      ? Object.fromEntries(
          Object.entries(parsed.roles).map(([name, role]) => [
            name,
            {
              creationStatements: role.creation_statements,
              ...(role.revocation_statements && { revocationStatements: role.revocation_statements }),
              ...(role.renew_statements && { renewStatements: role.renew_statements }),
            },
          ]),
        )
      : defaultRoles(databaseOf(parsed.connection_url), name);
    return { settings: { roles }, rootSecret: parsed.connection_url };
  },
  roles: (settings) => Object.keys(postgresSettings.parse(settings).roles),
  create: (settings, rootSecret) => new PostgresBackend({ connectionUrl: rootSecret, roles: postgresSettings.parse(settings).roles }),
};

export const BACKEND_FACTORIES: Readonly<Record<BackendType, BackendFactory>> = { postgres, ...HTTP_API_FACTORIES };

export const BACKEND_TYPES = Object.keys(BACKEND_FACTORIES) as BackendType[];

export function backendFactory(type: string): BackendFactory {
  if (!Object.hasOwn(BACKEND_FACTORIES, type)) throw new TesseraError('internal', `unknown backend type "${type}"`);
  return BACKEND_FACTORIES[type as BackendType];
}

/** Validation errors name the field but never echo its value: connection_url (or an API key) is a secret. */
export function parseBackendInput(type: BackendType, input: Readonly<Record<string, unknown>>, name: string): ReturnType<BackendFactory['parse']> {
  try {
    return BACKEND_FACTORIES[type].parse(input, name);
  } catch (error) {
    if (error instanceof z.ZodError) {
      const issue = error.issues[0]!;
      throw new TesseraError('invalid_request', `Invalid ${type} backend: ${issue.path.join('.') || 'body'}: ${issue.message}`);
    }
    throw error;
  }
}
