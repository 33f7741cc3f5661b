"""Receiving: the OTLP/gRPC and OTLP/HTTP receivers, HTTP body decoding and bearer-token authentication."""
