# quantrac container image: build with the Rust toolchain, run on a slim Debian as a non-root
# user. The journal lives on a volume at /var/lib/quantrac; configuration at /etc/quantrac.
#
#   docker build -t quantrac .
#   docker run -v quantrac-journal:/var/lib/quantrac -v ./deploy/quantrac:/etc/quantrac:ro quantrac

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so editing quantrac's own code does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# The test-support crate (a workspace member and dev-dependency): cargo reads its manifest,
# never builds it for the image.
COPY testkit/Cargo.toml ./testkit/
RUN mkdir -p src benches testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs testkit/src/lib.rs \
    && echo 'fn main() {}' > benches/pipeline.rs \
    && cargo build --release --locked \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
COPY regulations ./regulations
# Touch the sources so cargo sees them as newer than the placeholder build.
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin quantrac \
    && strip target/release/quantrac

FROM debian:bookworm-slim
# tzdata: payload times without an offset and daily windows are local (Asia/Ho_Chi_Minh);
# ca-certificates: mqtts:// and https:// InfluxDB with system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 quantrac \
    && useradd --system --uid 10001 --gid quantrac --home-dir /var/lib/quantrac --shell /usr/sbin/nologin quantrac \
    && install -d -o quantrac -g quantrac -m 0750 /var/lib/quantrac \
    && install -d -m 0755 /etc/quantrac
COPY --from=build /src/target/release/quantrac /usr/local/bin/quantrac
USER quantrac
WORKDIR /var/lib/quantrac
VOLUME ["/var/lib/quantrac"]
# /metrics, /healthz, /readyz. In a container set http.listen = "0.0.0.0:9787" and
# journal.path under /var/lib/quantrac in quantrac.toml (deploy/quantrac/quantrac.toml does).
EXPOSE 9787
# SIGTERM is a graceful stop (stop intake, commit, acknowledge, flush); give it time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/quantrac"]
CMD ["run", "--config", "/etc/quantrac/quantrac.toml"]
