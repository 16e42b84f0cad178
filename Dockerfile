# Broker image: Node 22 on Debian. The build stage compiles the native modules (pkcs11js,
# better-sqlite3) and dist/; the runtime stage gets only those, SoftHSM2 for the embedded PKCS#11
# key store, and runs as an unprivileged user. Checked statically by test/deploy/dockerfile.test.ts.

FROM node:22-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY packages ./packages
COPY src ./src
COPY provisioner ./provisioner
COPY bench ./bench
# `npm ci` runs `prepare` (the TypeScript build); the runtime keeps production dependencies only.
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund \
 && chmod 0755 dist/src/cli/main.js

FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin tessera \
 && install -d -o tessera -g tessera -m 0700 /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN ln -s /app/dist/src/cli/main.js /usr/local/bin/tessera
ENV NODE_ENV=production \
    TESSERA_DATA_DIR=/data \
    TESSERA_LISTEN=0.0.0.0:8700 \
    TESSERA_PROXY_LISTEN=0.0.0.0:8701
# Listening on every interface, the broker cannot guess the URLs clients use: pass
# TESSERA_PUBLIC_URL and TESSERA_PROXY_PUBLIC_URL (`docker run -e ...`), or start-up stops naming them.
USER tessera
VOLUME /data
EXPOSE 8700 8701
# The embedded default: SQLite and a SoftHSM2 token in /data. docker-compose.yml runs the scale-out setup.
CMD ["sh", "-c", "tessera init && exec tessera serve"]
