# The Loopline image: the command line and every worker, on Node.js 20.
#
#   docker build -t loopline:latest .
#   docker run --rm loopline:latest run --workers scorer --spec /etc/loopline/spec.json
#
# The entrypoint is the CLI (infra/k8s runs `run --workers <name> ...`). Java and Maven are not here: they only
# serve the embedded local stack, which a cluster does not use. Neither is Python: a pipeline with an external
# trainer (trainers/) needs an image built FROM this one with its interpreter and packages.
FROM node:20-slim

# tini as PID 1: forwards SIGTERM to node, so the runtime drains, and reaps the trainer's child processes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# .npmrc skips onnxruntime-node's optional GPU download; the CPU binaries ship in the package.
COPY package.json package-lock.json .npmrc ./
# tsx is a runtime dependency (the CLI runs TypeScript directly), so --omit=dev keeps it.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY . .

# Numeric, so Kubernetes can verify runAsNonRoot; the root file system may be read-only (tsx caches in /tmp).
USER 1000:1000
EXPOSE 9464
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--import", "tsx", "cli/main.ts"]
CMD ["--help"]
