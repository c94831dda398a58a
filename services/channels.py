"""gRPC credentials from settings: TLS or mTLS servers, channels that verify them, API keys on calls."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import grpc

from shared.settings import Settings


def _read(path: str) -> Optional[bytes]:
    return Path(path).read_bytes() if path else None


def server_credentials(settings: Settings) -> Optional[grpc.ServerCredentials]:
    """None = plaintext. With SEEDASR_TLS_CLIENT_CA every client must present a certificate it signed."""
    if not settings.tls_cert:
        return None
    pair = [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())]
    if settings.tls_client_ca:
        return grpc.ssl_server_credentials(pair, root_certificates=_read(settings.tls_client_ca),
                                           require_client_auth=True)
    return grpc.ssl_server_credentials(pair)


def uses_tls(settings: Settings) -> bool:
    return bool(settings.tls_ca or settings.tls_client_cert)


def open_channel(target: str, settings: Settings, options: Optional[Sequence[tuple[str, Any]]] = None,
                 api_key: str = "") -> grpc.Channel:
    """A channel to one of our servers: TLS when SEEDASR_TLS_CA or a client certificate is set, with the
    API key (if any) sent as `authorization: Bearer KEY` on every call."""
    opts = list(options or [])
    if settings.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", settings.tls_server_name))
    if not uses_tls(settings):
        if api_key:
            raise ValueError("an API key is only sent over TLS: set SEEDASR_TLS_CA")
        return grpc.insecure_channel(target, options=opts)
    creds = grpc.ssl_channel_credentials(root_certificates=_read(settings.tls_ca),
                                         private_key=_read(settings.tls_client_key),
                                         certificate_chain=_read(settings.tls_client_cert))
    if api_key:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(api_key))
    return grpc.secure_channel(target, creds, options=opts)
