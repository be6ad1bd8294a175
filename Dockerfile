# repro in a container: the toolchain, libtorch (PyPI torch==2.11.0 via scripts/setup.sh), a release build
# and prebuilt tests. The default command runs the README's test command (scripts/test.sh).
#
#   scripts/docker-build.sh          # engine + local base image + `docker build -t repro .`
#   scripts/docker-build.sh --test   # ... then `docker run --rm repro` (setup no-op + cargo test --locked)
#   docker run --rm repro repro verify
#
# There is no container registry here: BASE_IMAGE is a local image that scripts/docker-base.sh makes
# (debootstrap bookworm + docker import + the host's extra CA certificates). Where a registry is
# reachable, --build-arg BASE_IMAGE=debian:bookworm-slim works too. Never add a `# syntax=` line.
ARG BASE_IMAGE=repro-base:bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    CI=true

# Toolchain only; scripts/setup.sh installs the project's own Debian packages below.
# rustc-web/cargo-web: Debian's current Rust for bookworm (1.96 via bookworm-security); plain bookworm
# rustc is 1.63, below the dependencies' floor of 1.88. g++ compiles libtch (torch-sys build script).
# python3-venv: setup.sh makes .venv (pip comes from the venv's ensurepip).
# Unpinned on purpose: the security suite replaces versions; Cargo.toml's rust-version guards the minimum.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends rustc-web cargo-web g++ python3-venv \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The same idempotent set-up as on a workstation: libopenblas-dev, pkg-config, bible-kjv, .venv with torch.
# Its own layer, so source edits reuse the 1.3 GB venv.
COPY scripts/setup.sh scripts/
RUN bash scripts/setup.sh \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, against stub targets, so edits to the sources don't rebuild them (release for the
# binary, dev profile for the tests).
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && echo 'fn main() {}' > benches/memory.rs \
 && cargo build --release --locked \
 && cargo test --locked --no-run \
 && rm -rf src benches

# Link with LLVM's lld, as rustup's rust-lld does on the host: with GNU ld (Debian's rustc default) a binary
# that uses tch keeps libtorch_cuda.so as NEEDED and cannot start without all the CUDA wheels (scripts/docker-cc).
# A cc wrapper first on PATH, not target.linker or RUSTFLAGS, which are part of cargo's fingerprint and would
# rebuild every dependency when changed; placed after the dependency layer, which links no tch binary.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends lld \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/docker-cc /usr/local/bin/cc

# Everything else (.dockerignore keeps out target/, .venv/, reports/ contents and .git).
COPY . .
# COPY keeps the context's mtimes, older than the stub build: touch the crate roots so cargo rebuilds them.
RUN touch src/lib.rs src/main.rs benches/*.rs \
 && cargo build --release --locked \
 && cargo test --locked --no-run \
 && ln -s /src/target/release/repro /usr/local/bin/repro \
 && repro --help >/dev/null

CMD ["bash", "scripts/test.sh"]
