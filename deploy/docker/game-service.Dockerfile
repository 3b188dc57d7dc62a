# syntax=docker/dockerfile:1
# game-service image. Build from the repository root:
#   docker build -f deploy/docker/game-service.Dockerfile -t hangman/game-service:TAG .
# The runtime image holds the binary and nothing else: no shell, no
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
    cargo build --release --locked --bin game-service \
 && mkdir -p /out && cp target/release/game-service /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=rust /out/game-service /usr/local/bin/game-service
ENV GAME_SERVICE_LISTEN=0.0.0.0:50051
EXPOSE 50051
USER nonroot
ENTRYPOINT ["/usr/local/bin/game-service"]
