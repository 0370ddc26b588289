# syntax=docker/dockerfile:1
#
# The meshcanary controller image: one static binary on distroless/static,
# running as the non-root user 65532. The Helm chart (charts/meshcanary)
# runs it with the same user, command and arguments; test/install checks
# that they agree and that the binary is statically linked.
#
#   docker build -t ghcr.io/meshcanary/meshcanary:dev .

# The Go toolchain matches the `go` line of go.mod. Building on the build
# platform and cross-compiling keeps multi-arch builds fast.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
# Modules first, so that code changes reuse the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
# CGO_ENABLED=0: a static binary with no libc to load, which is what lets it
# run on distroless/static. -trimpath and -s -w: reproducible and smaller.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/meshcanary ./cmd/meshcanary

# distroless/static: CA certificates, /etc/passwd with the nonroot user and
# tzdata, no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meshcanary /meshcanary
# Numeric, so that the kubelet can enforce runAsNonRoot without a passwd
# lookup; the chart sets the same runAsUser.
USER 65532:65532
# Metrics and health probes (see the chart's controller.metricsPort and
# controller.healthPort).
EXPOSE 8080 8081
ENTRYPOINT ["/meshcanary"]
CMD ["controller"]
