/**
 * Registry entries of the HTTP API backend types: `stripe`, `openai` and `http` (proxied through
 * the credential proxy) and `openai-admin` (minted service-account keys). Each validates the
 * admin's fields, keeps the secret apart from the settings stored in clear, and builds the backend.
 */
import { z } from 'zod';
import type { BackendFactory } from '../registry.js';
import { OpenAIAdminBackend, SERVICE_ACCOUNT_ROLE } from './openai-admin-backend.js';
import { OPENAI_PRESETS, STRIPE_PRESETS } from './presets.js';
import { ProxyBackend, type ProxyBackendConfig } from './proxy-backend.js';
import { pathPrefix, routes, type ScopePreset } from './scopes.js';

const DEFAULT_URLS = { stripe: 'https://api.stripe.com', openai: 'https://api.openai.com' } as const;

const secret = z.string().min(1).max(8192);
const httpUrl = z.url({ protocol: /^https?$/ }).max(2048);

/** `{base_url, api_key}`: point the official SDK at base_url with api_key as its key. */
const upstreamSettings = z.object({ upstreamUrl: httpUrl });

/** A proxied type with built-in presets and a Bearer secret (Stripe, OpenAI). */
function bearerProxy(type: keyof typeof DEFAULT_URLS, secretField: string, presets: Readonly<Record<string, ScopePreset>>, probePath: string): BackendFactory {
  const input = z.object({ [secretField]: secret, upstream_url: httpUrl.optional() }).strict();
  return {
    parse(fields) {
      const parsed = input.parse(fields) as Record<string, string | undefined>;
      return { settings: { upstreamUrl: parsed.upstream_url ?? DEFAULT_URLS[type] }, rootSecret: parsed[secretField]! };
    },
    roles: () => Object.keys(presets),
    preset: (_settings, role) => (Object.hasOwn(presets, role) ? presets[role] : undefined),
    create: (settings, rootSecret, context) =>
      new ProxyBackend({
        type,
        upstreamUrl: upstreamSettings.parse(settings).upstreamUrl,
        secretHeader: { name: 'authorization', value: `Bearer ${rootSecret}` },
        presets,
        errorFormat: type,
        probePath,
        proxyUrl: context.proxyUrl,
      }),
  };
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const httpRule = z.object({ methods: z.array(z.enum(METHODS)).min(1), path_prefix: z.string().regex(/^\/[A-Za-z0-9/_.~-]*$/, 'must be a path starting with /') }).strict();
const scopeName = z.string().regex(/^[A-Za-z0-9_.:-]{1,63}$/, 'scope names are 1-63 of A-Z a-z 0-9 _ . : -');

const httpInput = z
  .object({
    upstream_url: httpUrl,
    secret,
    auth_header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/).optional(),
    auth_scheme: z.string().regex(/^[A-Za-z0-9-]{0,32}$/).optional(),
    scopes: z.record(scopeName, z.array(httpRule).min(1).max(64)).refine((scopes) => Object.keys(scopes).length > 0, 'define at least one scope'),
    check_path: z.string().regex(/^\//).optional(),
  })
  .strict();

const httpSettings = upstreamSettings.extend({
  authHeader: z.string(),
  authScheme: z.string(),
  scopes: z.record(z.string(), z.array(httpRule)),
  checkPath: z.string().optional(),
});

/** Generic HTTP API: the admin defines each scope as method + path-prefix rules. */
function httpPresets(scopes: z.infer<typeof httpSettings>['scopes']): Record<string, ScopePreset> {
  return Object.fromEntries(
    Object.entries(scopes).map(([name, rules]) => [
      name,
      { description: `admin-defined scope ${name}`, constraints: {}, rules: rules.flatMap((rule) => routes(rule.methods, pathPrefix(rule.path_prefix))) },
    ]),
  );
}

const http: BackendFactory = {
  parse(fields) {
    const parsed = httpInput.parse(fields);
    const settings = {
      upstreamUrl: parsed.upstream_url,
      authHeader: parsed.auth_header ?? 'authorization',
      authScheme: parsed.auth_scheme ?? 'Bearer',
      scopes: parsed.scopes,
      ...(parsed.check_path !== undefined && { checkPath: parsed.check_path }),
    };
    return { settings, rootSecret: parsed.secret };
  },
  roles: (settings) => Object.keys(httpSettings.parse(settings).scopes),
  preset: (settings, role) => httpPresets(httpSettings.parse(settings).scopes)[role],
  create(settings, rootSecret, context) {
    const parsed = httpSettings.parse(settings);
    const config: ProxyBackendConfig = {
      type: 'http',
      upstreamUrl: parsed.upstreamUrl,
      secretHeader: { name: parsed.authHeader, value: parsed.authScheme ? `${parsed.authScheme} ${rootSecret}` : rootSecret },
      presets: httpPresets(parsed.scopes),
      errorFormat: 'tessera',
      ...(parsed.checkPath !== undefined && { probePath: parsed.checkPath }),
      proxyUrl: context.proxyUrl,
    };
    return new ProxyBackend(config);
  },
};

const openaiAdminInput = z
  .object({ admin_key: secret, project_id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), upstream_url: httpUrl.optional() })
  .strict();
const openaiAdminSettings = upstreamSettings.extend({ projectId: z.string() });

const openaiAdmin: BackendFactory = {
  parse(fields) {
    const parsed = openaiAdminInput.parse(fields);
    return { settings: { upstreamUrl: parsed.upstream_url ?? DEFAULT_URLS.openai, projectId: parsed.project_id }, rootSecret: parsed.admin_key };
  },
  roles: () => [SERVICE_ACCOUNT_ROLE],
  create(settings, rootSecret) {
    const parsed = openaiAdminSettings.parse(settings);
    return new OpenAIAdminBackend({ adminKey: rootSecret, projectId: parsed.projectId, upstreamUrl: parsed.upstreamUrl });
  },
};

export const HTTP_API_FACTORIES = {
  stripe: bearerProxy('stripe', 'secret_key', STRIPE_PRESETS, '/v1/balance'),
  openai: bearerProxy('openai', 'api_key', OPENAI_PRESETS, '/v1/models'),
  http,
  'openai-admin': openaiAdmin,
} as const satisfies Record<string, BackendFactory>;
