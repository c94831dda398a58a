"""What the HTTP front's routes share (one per process): the gateway's servicer, the gRPC server's guard, the
settings, the served model's id, and the WebSocket streams' threads and feeds, which a drain ends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from services.guard import Guard
from shared.settings import Settings


@dataclass
class Front:
    service: Any  # services.gateway.server.RecognizerService
    guard: Guard
    settings: Settings
    model_id: str
    started: float = 0.0
    draining: bool = False
    # one thread per open WebSocket stream (admission caps them at max_streams), apart from the request pool
    streams: Optional[ThreadPoolExecutor] = None
    feeds: set[Any] = field(default_factory=set)  # the open WebSocket streams' feeds (services/http/stream.py)
