# syntax=docker/dockerfile:1
# irsa-webhook image: a static binary on distroless, running as 65532:65532.
#
#   docker build -t irsa-webhook:dev .
#
# Why musl: the x86_64-unknown-linux-musl target links statically by design, so the binary runs on
# distroless/static (no libc at all) and TLS is rustls + ring (no OpenSSL anywhere). A static glibc build
# (-C target-feature=+crt-static on the gnu target) also links here, but glibc does not really support static
# linking: getaddrinfo and NSS would still try to dlopen libnss_*.so, which distroless/static does not have.
# ring's C and assembly parts, and mimalloc (the musl build's allocator, src/main.rs), need a musl C compiler:
# Debian's musl-tools (musl-gcc).
#
# tests/chart/build-static.sh runs the same cargo command outside Docker (tests/chart/test.sh checks that the
# two stay the same).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src
# Strip symbols: a smaller image; panics still print messages (no backtrace symbols).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" --bin irsa-webhook \
 && install -D -m 0555 "target/${TARGET}/release/irsa-webhook" /out/irsa-webhook \
 && /out/irsa-webhook --version \
 && ln /out/irsa-webhook /out/webhook

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="irsa-webhook" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook for IAM Roles for Service Accounts" \
      org.opencontainers.image.licenses="Apache-2.0"
# /webhook is the reference image's binary (amazon-eks-pod-identity-webhook): deployments that run `command:
# [/webhook, ...]` work unchanged, since started under that name the binary behaves as `irsa-webhook serve`. A hard
# link of the same file, copied with it (a builder that does not keep hard links stores a second copy; either way
# it is the same program).
COPY --from=build /out/ /
USER 65532:65532
# 8443: the webhook (HTTPS; the chart passes --port=8443). 9999: /healthz, /readyz, /metrics (plain HTTP).
# The reference's default --port is 443: as a non-root user that needs NET_BIND_SERVICE, or a runtime that sets
# net.ipv4.ip_unprivileged_port_start (docs/migrating.md).
EXPOSE 8443 9999
ENTRYPOINT ["/irsa-webhook"]
CMD ["serve"]
