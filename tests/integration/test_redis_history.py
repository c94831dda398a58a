import threading
import uuid

import pytest

from shared.history import RedisHistoryStore

pytestmark = pytest.mark.integration


def test_append_trim_expire_atomically(redis_url: str) -> None:
    store = RedisHistoryStore(redis_url, max_turns=5, ttl_s=60)
    sid = f"test-{uuid.uuid4().hex}"
    assert store.get(sid) is None

    def writer(k: int) -> None:
        for i in range(20):
            store.append(sid, {"role": "user", "text": f"{k}-{i}", "turn_id": f"{k}-{i}", "created_unix": 0})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    turns = store.get(sid)
    assert turns is not None and len(turns) == 5
    ttl = store.r.ttl("seedasr:session:" + sid)
    assert 0 < ttl <= 60
    assert store.delete(sid) and store.get(sid) is None and not store.delete(sid)
