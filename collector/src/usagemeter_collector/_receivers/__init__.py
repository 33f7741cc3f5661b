"""Receiving, the pipeline's first stage: OTLP requests arrive and are decoded into messages.

``grpc_receiver`` and ``http_receiver`` answer OTLP/gRPC and OTLP/HTTP, ``payload`` decodes HTTP bodies
(content types, gzip, protobuf and OTLP JSON), ``auth`` checks bearer tokens, and ``hosted_server`` runs a
uvicorn server inside the caller's event loop. Both receivers hand each request to the ingest
(``usagemeter_collector._ingest``), which checks it and spools it.
"""
