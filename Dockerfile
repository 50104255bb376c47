# authzd container image: a static binary on a distroless base, non-root.
#   docker build -t authzd .
#   docker run -v $PWD/examples/quickstart:/etc/authzd authzd serve --config /etc/authzd/authzd.yaml --listen 0.0.0.0:9191
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authzd ./cmd/authzd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authzd /authzd
USER 65532:65532
EXPOSE 9191 9192
ENTRYPOINT ["/authzd"]
