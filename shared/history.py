"""Session history: Redis in the mesh (one list per session, capped, with a TTL), memory in the
embedded server. Turns are JSON objects {"role", "text", "turn_id", "created_unix"}."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Optional, Protocol

KEY_PREFIX = "seedasr:session:"
log = logging.getLogger(__name__)


def check_durability(client: Any, mode: str, url: str) -> bool:
    """Whether Redis logs every write to its append-only file before it answers (appendonly yes): then a
    killed Redis loses nothing it acknowledged (everysec: a machine crash, the last second). mode "require"
    stops the process with a clear message when it does not; "warn" logs it. Returns the finding."""
    try:
        durable = int(client.info("persistence").get("aof_enabled", 0)) == 1
    except Exception as exc:  # INFO refused (managed Redis with ACLs): say so, do not guess
        log.warning("cannot read the persistence of the Redis at %s: %s", url, exc)
        return False
    if not durable:
        message = (f"the Redis at {url} has appendonly off: acknowledged sessions and feedback would be lost "
                   "if it crashed; start it with --appendonly yes (every deployment of the project does)")
        if mode == "require":
            raise SystemExit(message + ", or set SEEDASR_REDIS_DURABILITY=warn")
        log.warning(message)
    return durable


class HistoryStore(Protocol):
    def append(self, session_id: str, turn: dict[str, Any]) -> int: ...

    def get(self, session_id: str) -> Optional[list[dict[str, Any]]]: ...

    def delete(self, session_id: str) -> bool: ...


class RedisHistoryStore:
    def __init__(self, url: str, max_turns: int, ttl_s: int) -> None:
        import redis

        self.r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30,
                                      retry_on_timeout=True)
        self.max_turns, self.ttl_s = max_turns, ttl_s

    def append(self, session_id: str, turn: dict[str, Any]) -> int:
        key = KEY_PREFIX + session_id
        pipe = self.r.pipeline(transaction=True)  # MULTI/EXEC: append, trim and expire as one step
        pipe.rpush(key, json.dumps(turn))
        pipe.ltrim(key, -self.max_turns, -1)
        pipe.expire(key, self.ttl_s)
        pipe.llen(key)
        return int(pipe.execute()[-1])

    def get(self, session_id: str) -> Optional[list[dict[str, Any]]]:
        items = self.r.lrange(KEY_PREFIX + session_id, 0, -1)
        return [json.loads(i) for i in items] if items else None

    def delete(self, session_id: str) -> bool:
        return bool(self.r.delete(KEY_PREFIX + session_id))

    def ping(self) -> bool:
        return bool(self.r.ping())


class MemoryHistoryStore:
    def __init__(self, max_turns: int, ttl_s: int) -> None:
        self.max_turns, self.ttl_s = max_turns, ttl_s
        self.sessions: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self.lock = threading.Lock()

    def _live(self, session_id: str) -> Optional[list[dict[str, Any]]]:
        entry = self.sessions.get(session_id)
        if entry is None or entry[0] < time.time():
            self.sessions.pop(session_id, None)
            return None
        return entry[1]

    def append(self, session_id: str, turn: dict[str, Any]) -> int:
        with self.lock:
            turns = (self._live(session_id) or []) + [turn]
            turns = turns[-self.max_turns :]
            self.sessions[session_id] = (time.time() + self.ttl_s, turns)
            return len(turns)

    def get(self, session_id: str) -> Optional[list[dict[str, Any]]]:
        with self.lock:
            turns = self._live(session_id)
            return list(turns) if turns is not None else None

    def delete(self, session_id: str) -> bool:
        with self.lock:
            return self.sessions.pop(session_id, None) is not None
