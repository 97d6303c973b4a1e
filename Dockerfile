# Build a static binary, then ship it alone: no shell, no package manager,
# nothing to patch but m365tap itself.
#
# Image names are fully qualified (registry/namespace/name): podman and
# buildah refuse a short name such as golang:1.26 unless the host's
# registries.conf says where to look, and the tag must not depend on it.
FROM docker.io/library/golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version m365tap reports (m365tap version, the start record, observer
# and CEF fields): VERSION when given (--build-arg VERSION=1.2.3), else the
# source's own version with the commit it was built from when the context
# holds .git (0.1.0-dev+1a2b3c4d5e6f), else the source's version alone.
ARG VERSION=
RUN v="${VERSION}"; \
    if [ -z "$v" ]; then \
      v="$(sed -n 's/^var Version = "\(.*\)"$/\1/p' cli/root.go)"; \
      rev="$(git -c safe.directory=/src rev-parse --short=12 HEAD 2>/dev/null || true)"; \
      if [ -n "$rev" ]; then v="$v+$rev"; fi; \
    fi; \
    test -n "$v"; \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/m365tap/m365tap/cli.Version=$v" \
      -o /out/m365tap . && \
    /out/m365tap version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/m365tap /usr/local/bin/m365tap
# A numeric non-root user: Kubernetes' runAsNonRoot can verify it without
# an /etc/passwd lookup, and the tap needs no privileges (port 8080).
USER 65532:65532
# Inside the container the tap must listen on all interfaces to be reachable
# through a published port: ":8080" is both families where the container has
# IPv6, IPv4 alone where it has not ("[::]:8080" would fail to start there,
# "0.0.0.0:8080" would never see ::1). A non-loopback listener refuses to start without
# an allow list. A published port's connections arrive from the runtime's
# gateway, which is on the network of the container's own interface whatever
# its address (Docker's 172.17.0.1, podman's 10.88.0.1, rootless podman's
# slirp4netns or pasta gateway), so the image allows "interfaces": the
# networks of the container's interfaces, read when the tap starts, and
# loopback of both families. Set M365TAP_ACCESS_ALLOW to the PCs' subnet to
# serve them (the value replaces this list; keep interfaces in it to go on
# serving the host).
ENV M365TAP_LISTEN=:8080 \
    M365TAP_ACCESS_ALLOW=interfaces
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/m365tap"]
CMD ["run"]
