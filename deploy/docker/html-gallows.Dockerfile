# syntax=docker/dockerfile:1
# html-gallows image. Build from the repository root:
#   docker build -f deploy/docker/html-gallows.Dockerfile -t hangman/html-gallows:TAG .
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
    cargo build --release --locked --bin html-gallows \
 && mkdir -p /out && cp target/release/html-gallows /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=rust /out/html-gallows /usr/local/bin/html-gallows
ENV HTML_GALLOWS_LISTEN=0.0.0.0:4001
EXPOSE 4001
USER nonroot
ENTRYPOINT ["/usr/local/bin/html-gallows"]
