# syntax=docker/dockerfile:1
# ws-gateway image. Build from the repository root:
#   docker build -f deploy/docker/ws-gateway.Dockerfile -t hangman/ws-gateway:TAG .
# The runtime image holds the binary and the built SPA and nothing else: no shell, no
# package manager, running as the distroless "nonroot" user (65532).

FROM rust:1-bookworm AS rust
WORKDIR /src
# Every workspace member is needed for cargo to resolve the workspace.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY service-kit service-kit
COPY game-service game-service
COPY phoenix-channels phoenix-channels
COPY ws-gateway ws-gateway
COPY html-gallows html-gallows
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ws-gateway \
 && mkdir -p /out && cp target/release/ws-gateway /out/

# The SPA (web/), built with the lock file's exact packages.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=rust /out/ws-gateway /usr/local/bin/ws-gateway
COPY --from=web /web/dist /srv/web
ENV WS_GATEWAY_LISTEN=0.0.0.0:4000 \
    WS_GATEWAY_STATIC_DIR=/srv/web
EXPOSE 4000
USER nonroot
ENTRYPOINT ["/usr/local/bin/ws-gateway"]
