# One image for every twofactor service in docker-compose.yml: authd, authctl,
# the demo and (once it exists) notifyd, as static binaries (the SQLite driver
# is pure Go) on a distroless base without a shell, which is why authd, notifyd
# and the demo each have a `healthcheck` subcommand.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN mkdir -p /out/bin /out/data && \
    for c in authd authctl demo notifyd; do \
      if [ -d "./cmd/$c" ]; then CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "/out/bin/$c" "./cmd/$c" || exit 1; fi; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The data folder (keys; SQLite in embedded mode) belongs to the unprivileged user,
# so a named volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
WORKDIR /data
EXPOSE 7443 8080
ENTRYPOINT ["/usr/local/bin/authd"]
