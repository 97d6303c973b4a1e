# Build a static binary, then ship it alone: no shell, no package manager,
# nothing to patch but m365tap itself.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/m365tap/m365tap/cli.Version=${VERSION}" \
      -o /out/m365tap .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/m365tap /usr/local/bin/m365tap
# A numeric non-root user: Kubernetes' runAsNonRoot can verify it without
# an /etc/passwd lookup, and the tap needs no privileges (port 8080).
USER 65532:65532
# Inside the container the tap must listen on all interfaces to be reachable
# through a published port. A non-loopback listener refuses to start without
# an allow list, so the image allows only the Docker host's bridge networks;
# set M365TAP_ACCESS_ALLOW to the PCs' subnet to serve them.
ENV M365TAP_LISTEN=0.0.0.0:8080 \
    M365TAP_ACCESS_ALLOW=127.0.0.0/8,172.16.0.0/12
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/m365tap"]
CMD ["run"]
