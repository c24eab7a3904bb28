# syntax=docker/dockerfile:1
# One Dockerfile, a target per app:
#   docker build --target api -t longhaul-api .
#   docker build --target worker -t longhaul-worker .
#   docker build --build-arg APP=worker .   (the last stage, for builders that take no target: Railway)
# All run `node dist/main.js` (a tsup bundle; see tsup.app.ts) as the unprivileged
# `node` user, with only production dependencies installed (`pnpm deploy --prod`).

ARG NODE_VERSION=24
ARG PNPM_VERSION=10.34.9

FROM node:${NODE_VERSION}-bookworm-slim AS build
ARG PNPM_VERSION
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH CI=true
RUN npm install -g "pnpm@${PNPM_VERSION}" --no-fund --no-audit
WORKDIR /repo
# Dependencies first, from the lockfile alone, so a source change does not refetch them.
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store pnpm fetch --frozen-lockfile
COPY . .
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store pnpm install --offline --frozen-lockfile
RUN pnpm --filter @longhaul/api --filter @longhaul/worker build
# A pruned, production-only node_modules per app (--legacy: the workspace does not inject packages).
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm --filter @longhaul/api deploy --prod --legacy /out/api \
 && pnpm --filter @longhaul/worker deploy --prod --legacy /out/worker \
 && cp -r apps/api/dist /out/api/dist \
 && cp -r apps/worker/dist /out/worker/dist

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production LOG_PRETTY=false
WORKDIR /app
# The files stay root-owned (read-only to the app); the process runs as `node` (uid 1000).
USER node

FROM runtime AS api
COPY --from=build /out/api /app
ENV PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]

FROM runtime AS worker
COPY --from=build /out/worker /app
ENV WORKER_PORT=3001
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.WORKER_PORT||3001)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM starts the drain: active jobs get SHUTDOWN_GRACE_MS, then go back to the queue.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]

# The default (last) stage, for builders that cannot pick a target (Railway builds the last one):
# the app comes from the APP build argument, `api` or `worker` (Railway passes service variables
# named like an ARG as build arguments).
FROM runtime AS app
ARG APP=api
COPY --from=build /out/${APP} /app
CMD ["node", "dist/main.js"]
