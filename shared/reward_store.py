"""Where the reward side keeps turns (their n-best) and the RL samples training reads.

Mesh: Redis (turns with a TTL; samples in a hash by turn id plus an append-only list of ids).
Embedded: memory for turns, a JSONL file for samples. `training/rl` reads either.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Protocol

TURN_KEY = "seedasr:turn:"
SAMPLE_KEY = "seedasr:rl:sample"
SAMPLE_LOG = "seedasr:rl:samples"
LATEST_KEY = "seedasr:rl:latest:"  # turn id -> id of its newest sample

# Store, log and index a sample in one step: a worker killed half-way must not leave a sample that
# the idempotency check sees as done but the log never lists.
_ADD_SAMPLE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[3], ARGV[1])
  return 1
end
return 0
"""


class RewardStore(Protocol):
    def put_turn(self, turn: dict[str, Any]) -> None: ...

    def get_turn(self, turn_id: str) -> Optional[dict[str, Any]]: ...

    def add_sample(self, sample: dict[str, Any]) -> bool: ...

    def get_sample(self, turn_id: str) -> Optional[dict[str, Any]]: ...

    def stored_samples(self, sample_ids: list[str]) -> set[str]: ...

    def samples(self) -> Iterator[dict[str, Any]]: ...


class RedisRewardStore:
    def __init__(self, url: str, turn_ttl_s: int = 7 * 24 * 3600) -> None:
        import redis

        self.r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, retry_on_timeout=True)
        self.ttl = turn_ttl_s
        self._add = self.r.register_script(_ADD_SAMPLE)

    def put_turn(self, turn: dict[str, Any]) -> None:
        self.r.set(TURN_KEY + turn["turn_id"], json.dumps(turn), ex=self.ttl)

    def get_turn(self, turn_id: str) -> Optional[dict[str, Any]]:
        raw = self.r.get(TURN_KEY + turn_id)
        return json.loads(raw) if raw else None

    def add_sample(self, sample: dict[str, Any]) -> bool:
        """Idempotent by sample id: a redelivered task adds nothing. Returns True when new."""
        keys = [SAMPLE_KEY, SAMPLE_LOG, LATEST_KEY + sample["turn_id"]]
        return bool(self._add(keys=keys, args=[sample["sample_id"], json.dumps(sample)]))

    def stored_samples(self, sample_ids: list[str]) -> set[str]:
        """The ids among `sample_ids` whose samples are stored."""
        if not sample_ids:
            return set()
        pipe = self.r.pipeline(transaction=False)
        for sid in sample_ids:
            pipe.hexists(SAMPLE_KEY, sid)
        return {sid for sid, found in zip(sample_ids, pipe.execute()) if found}

    def get_sample(self, turn_id: str) -> Optional[dict[str, Any]]:
        sid = self.r.get(LATEST_KEY + turn_id)
        raw = self.r.hget(SAMPLE_KEY, sid) if sid else None
        return json.loads(raw) if raw else None

    def samples(self) -> Iterator[dict[str, Any]]:
        for sid in self.r.lrange(SAMPLE_LOG, 0, -1):
            raw = self.r.hget(SAMPLE_KEY, sid)
            if raw:
                yield json.loads(raw)


class LocalRewardStore:
    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.turns: dict[str, dict[str, Any]] = {}

    def put_turn(self, turn: dict[str, Any]) -> None:
        self.turns[turn["turn_id"]] = turn

    def get_turn(self, turn_id: str) -> Optional[dict[str, Any]]:
        return self.turns.get(turn_id)

    def add_sample(self, sample: dict[str, Any]) -> bool:
        with self.lock:
            if any(s["sample_id"] == sample["sample_id"] for s in self.samples()):
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(sample) + "\n")
            return True

    def stored_samples(self, sample_ids: list[str]) -> set[str]:
        wanted = set(sample_ids)
        return {s["sample_id"] for s in self.samples() if s["sample_id"] in wanted}

    def get_sample(self, turn_id: str) -> Optional[dict[str, Any]]:
        found = [s for s in self.samples() if s["turn_id"] == turn_id]
        return found[-1] if found else None

    def samples(self) -> Iterator[dict[str, Any]]:
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)
