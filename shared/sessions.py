"""Session ids: what a client may send, and the longer tenant-scoped ids the context service stores."""

from __future__ import annotations

import re
from typing import Any

import grpc

SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]+$")
MAX_SESSION_ID = 128  # what a client may send; the gateway prefixes `tenant:` (services/gateway/limits.py)
MAX_SCOPED_SESSION_ID = 200


def check_session_id(session_id: str, context: Any, required: bool = True, limit: int = MAX_SCOPED_SESSION_ID) -> None:
    """Aborts the call with INVALID_ARGUMENT unless `session_id` is 1-`limit` allowed characters."""
    if not session_id and not required:
        return
    if len(session_id) > limit or not SESSION_ID.match(session_id):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"session_id must be 1-{limit} characters of letters, digits and . _ : @ -")
