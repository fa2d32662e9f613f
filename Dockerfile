# Builds authd and authctl as static binaries (the SQLite driver is pure Go).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN mkdir -p /out/data && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/authd ./cmd/authd && \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/authctl ./cmd/authctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authd /out/authctl /usr/local/bin/
# The data folder (keys; SQLite in embedded mode) belongs to the unprivileged user,
# so a named volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/authd"]
