# syntax=docker/dockerfile:1
# Build: docker build -t sessiongate .
# Run:   docker run -p 7350:7350 -p 9100:9100 sessiongate
# Every flag is also an environment variable: SESSIONGATE_<FLAG_IN_UPPER_SNAKE_CASE>.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gateway ./cmd/gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /usr/local/bin/gateway
USER nonroot:nonroot
EXPOSE 7350 9100
ENTRYPOINT ["/usr/local/bin/gateway"]
