"""Request limits of the public API, checked before any work (a 100k-hotword list or a 1 MB prompt is
refused in microseconds, not after minutes of context assembly), and tenant-scoped session ids."""

from __future__ import annotations

from typing import Any

import grpc

from seedasr.v1 import common_pb2
from services.guard import current_tenant
from shared.settings import Settings

MAX_LANGUAGE_CHARS = 35  # the longest BCP-47 tags in use


def check_context(ctx: common_pb2.RequestContext, settings: Settings, context: Any) -> None:
    """Aborts with INVALID_ARGUMENT, naming the limit and its setting, when the request context is too big."""
    def refuse(message: str) -> None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    if len(ctx.hotwords) > settings.max_hotwords:
        refuse(f"{len(ctx.hotwords)} hotwords; at most {settings.max_hotwords} (SEEDASR_MAX_HOTWORDS)")
    if any(len(h) > settings.max_hotword_chars for h in ctx.hotwords):
        refuse(f"a hotword is longer than {settings.max_hotword_chars} characters (SEEDASR_MAX_HOTWORD_CHARS)")
    if len(ctx.prompt) > settings.max_prompt_chars:
        refuse(f"prompt is {len(ctx.prompt)} characters; at most {settings.max_prompt_chars} (SEEDASR_MAX_PROMPT_CHARS)")
    if len(ctx.history) > settings.max_history_turns:
        refuse(f"{len(ctx.history)} history turns; at most {settings.max_history_turns} (SEEDASR_MAX_HISTORY_TURNS)")
    chars = sum(len(t) for t in ctx.history)
    if chars > settings.max_history_chars:
        refuse(f"history is {chars} characters; at most {settings.max_history_chars} (SEEDASR_MAX_HISTORY_CHARS)")


def check_language(language: str, context: Any) -> None:
    if len(language) > MAX_LANGUAGE_CHARS:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"language must be a BCP-47 tag of at most {MAX_LANGUAGE_CHARS} characters")


def scoped(session_id: str) -> str:
    """The id the context service stores a session under: `tenant:id` when the caller has a tenant,
    so one tenant can neither read nor delete another's sessions (tenants hold no ':')."""
    tenant = current_tenant.get()
    return f"{tenant}:{session_id}" if tenant and session_id else session_id


def unscoped(session_id: str) -> str:
    tenant = current_tenant.get()
    prefix = f"{tenant}:"
    return session_id[len(prefix):] if tenant and session_id.startswith(prefix) else session_id
