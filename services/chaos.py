"""Fault injection: kill -9 the Celery worker, the bridge (reward service), Redis, NATS and the gateway, in turn
and repeatedly, while feedback keeps arriving; then count acknowledged feedback lost or stored twice.

    python -m services.chaos --kills 20        # make chaos KILLS=20

It starts its own Redis (AOF, appendfsync everysec, as every deployment of the project) and NATS
(JetStream on disk) on free ports, so the machine's servers are never killed. Each turn is published as the
gateway publishes a recognised turn; its feedback goes through the gateway's SubmitFeedback over gRPC, and
"acknowledged" means what that client was told: accepted=True. A call that failed (UNAVAILABLE while NATS or the
gateway is down) is retried by the load, as a client retries.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from seedasr.v1 import events_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.localmesh import Proc, free_port, reachable, wait_for, wait_serving
from shared.bus import NatsConnection
from shared.events import TURNS_SUBJECT, JetStreamBus, sample_id_of
from shared.reward_store import SAMPLE_KEY, SAMPLE_LOG, RedisRewardStore
from shared.turn_ids import new_turn_id

COMPONENTS = ("worker", "bridge", "redis", "nats", "gateway")


@dataclass
class Load:
    """Turns published and their feedback submitted without pause; `acked` holds the sample id of every feedback
    the gateway accepted."""

    bus: JetStreamBus
    gateway_port: int
    acked: set[str] = field(default_factory=set)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _retry(self, attempt: Callable[[], object]) -> None:
        while not self.stop.is_set():  # a client retries until acknowledged (same id: de-duplicated)
            try:
                attempt()
                return
            except Exception:
                self.refused += 1
                time.sleep(0.2)
        raise InterruptedError

    def run(self) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{self.gateway_port}")
        stub = recognizer_pb2_grpc.RecognizerStub(channel)
        while not self.stop.is_set():
            turn_id = new_turn_id("")  # as the gateway names a turn of a caller without a tenant
            heard = events_pb2.TurnEvent.Hypothesis(text="call alex now", score=-1.0)
            turn = events_pb2.TurnEvent(turn_id=turn_id, nbest=[heard])
            feedback = recognizer_pb2.SubmitFeedbackRequest(turn_id=turn_id, corrected_text="call alice now",
                                                            keywords=["alice"])

            def submit(request: recognizer_pb2.SubmitFeedbackRequest = feedback) -> None:
                if not stub.SubmitFeedback(request, timeout=5).accepted:
                    raise RuntimeError("not accepted")

            def publish(event: bytes = turn.SerializeToString(), msg_id: str = turn_id) -> None:
                self.bus.publish(TURNS_SUBJECT, event, msg_id=msg_id)

            try:
                self._retry(publish)
                self._retry(submit)
            except InterruptedError:
                break
            self.acked.add(sample_id_of(turn_id, "call alice now", ["alice"]))
            time.sleep(0.05)
        channel.close()


class Cluster:
    def __init__(self, work: Path, bundle: str) -> None:
        self.work = work
        self.redis_port, self.nats_port, self.reward_port = free_port(), free_port(), free_port()
        (work / "redis").mkdir()
        (work / "nats").mkdir()
        self.redis_url, self.nats_url = f"redis://127.0.0.1:{self.redis_port}/0", f"nats://127.0.0.1:{self.nats_port}"
        env = {"REDIS_URL": self.redis_url, "NATS_URL": self.nats_url, "SEEDASR_MODEL": bundle,
               "SEEDASR_CELERY_VISIBILITY_S": "5", "SEEDASR_REDIS_DURABILITY": "require"}
        redis_args = ["--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(work / "redis"),
                      "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        self.procs = {
            "redis": Proc("redis", redis_args, {}, work, program=shutil.which("redis-server") or "redis-server"),
            "nats": Proc("nats", ["-a", "127.0.0.1", "-p", str(self.nats_port), "-js", "-sd", str(work / "nats")], {},
                         work, program=shutil.which("nats-server") or "nats-server"),
        }
        wait_for(lambda: reachable(self.redis_port) and reachable(self.nats_port), 20, "redis and nats")
        self.procs["bridge"] = Proc("bridge", ["-m", "services.cli", "serve", "reward", "--port", str(self.reward_port)],
                                    env, work)
        self.procs["worker"] = Proc("worker", ["-m", "services.cli", "worker"], env, work)
        self.gateway_port = free_port()
        self.procs["gateway"] = Proc("gateway", ["-m", "services.cli", "serve", "gateway", "--port", str(self.gateway_port)],
                                     {**env, "SEEDASR_HTTP_PORT": "-1"}, work)
        wait_serving(self.reward_port, self.procs["bridge"])
        wait_serving(self.gateway_port, self.procs["gateway"])

    def kill_and_restart(self, name: str, down_s: float) -> None:
        proc = self.procs[name]
        proc.kill()
        time.sleep(down_s)
        proc.start()
        if name == "bridge":
            wait_serving(self.reward_port, proc)
        elif name == "gateway":
            wait_serving(self.gateway_port, proc)
        elif name in ("redis", "nats"):
            port = self.redis_port if name == "redis" else self.nats_port
            wait_for(lambda: reachable(port), 20, name)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _in_stream(conn: NatsConnection, turn_id: str) -> list[str]:
    """The subjects of the stream's messages about `turn_id` (a scan: diagnostics only)."""
    from shared.events import STREAM

    async def scan() -> list[str]:
        info = await conn.js.stream_info(STREAM)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await conn.js.get_msg(STREAM, seq)
            except Exception:
                continue
            if msg.data and turn_id.encode() in msg.data:
                found.append(f"{msg.subject}@{seq}")
        return found

    return conn.run(scan(), timeout=120)


def run_chaos(kills: int, bundle: str, down_s: float = 1.0, up_s: float = 2.0, settle_s: float = 120.0,
              work: Path | None = None) -> dict[str, int]:
    """Kill each component `kills` times under load; returns the counts the closing table prints."""
    work = work or Path(tempfile.mkdtemp(prefix="seedasr-chaos-"))
    cluster = Cluster(work, bundle)
    conn = NatsConnection(cluster.nats_url, "chaos-load")
    load = Load(JetStreamBus(conn), cluster.gateway_port)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        for _ in range(kills):
            for name in COMPONENTS:
                time.sleep(up_s)
                cluster.kill_and_restart(name, down_s)
        time.sleep(up_s)
        load.stop.set()
        thread.join(30)
        store = RedisRewardStore(cluster.redis_url)

        def stored() -> set[str]:
            return {_text(s) for s in store.r.hkeys(SAMPLE_KEY)}

        try:
            wait_for(lambda: load.acked <= stored(), settle_s, "every acknowledged feedback to be scored", interval=1.0)
        except TimeoutError:
            pass  # counted as lost below
        logged = [_text(s) for s in store.r.lrange(SAMPLE_LOG, 0, -1)]
        lost = sorted(load.acked - stored())
        for sample_id in lost[:20]:  # where each was lost: its turn in Redis? its events in JetStream?
            turn_id = sample_id.split(":")[0]
            print(f"lost {sample_id}: turn stored {store.get_turn(turn_id) is not None}, "
                  f"in JetStream: {_in_stream(conn, turn_id)}", file=sys.stderr)
        return {"kills_per_component": kills, "acknowledged": len(load.acked), "publish_retries": load.refused,
                "lost": len(lost), "duplicated": len(logged) - len(set(logged))}
    finally:
        load.stop.set()
        conn.close()
        cluster.close()


def main() -> None:
    from shared.bundle_store import default_bundle_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20, help="kills of each component")
    ap.add_argument("--down-s", type=float, default=1.0, help="seconds a killed component stays down")
    ap.add_argument("--up-s", type=float, default=2.0, help="seconds between kills")
    ap.add_argument("--model", default=str(default_bundle_dir()))
    args = ap.parse_args()
    started = time.time()
    counts = run_chaos(args.kills, args.model, args.down_s, args.up_s)
    print("| component kills (each) | acknowledged feedback | client retries | lost | duplicated | minutes |")
    print("|---|---|---|---|---|---|")
    print(f"| {counts['kills_per_component']} x {', '.join(COMPONENTS)} | {counts['acknowledged']} | "
          f"{counts['publish_retries']} | {counts['lost']} | {counts['duplicated']} | {(time.time() - started) / 60:.1f} |")
    raise SystemExit(1 if counts["lost"] or counts["duplicated"] else 0)


if __name__ == "__main__":
    main()
