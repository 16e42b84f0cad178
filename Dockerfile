# Broker image: Node 20 on Debian with SoftHSM2 for the embedded PKCS#11 key store.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 build-essential python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY packages ./packages
COPY src ./src
COPY provisioner ./provisioner
COPY bench ./bench
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
ENV TESSERA_DATA_DIR=/data
VOLUME /data
EXPOSE 8700
CMD ["sh", "-c", "node dist/src/cli/main.js init && exec node dist/src/cli/main.js serve --listen 0.0.0.0:8700"]
