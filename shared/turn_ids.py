"""Turn ids that name their tenant: feedback from one tenant can never land on another tenant's turn.

A turn id is 32 hex characters, 24 random and 8 of sha256(tenant:random). Whoever presents a turn id with a
tenant can be checked without a lookup (the gateway holds no turns; the reward store is written asynchronously):
another tenant's id does not verify under the caller's tenant, and one forged to verify names no turn.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

RANDOM_HEX = 24
_TURN_ID = re.compile(r"[0-9a-f]{32}")


def _seal(tenant: str, random_part: str) -> str:
    return hashlib.sha256(f"{tenant}:{random_part}".encode()).hexdigest()[:32 - RANDOM_HEX]


def new_turn_id(tenant: str) -> str:
    random_part = secrets.token_hex(RANDOM_HEX // 2)
    return random_part + _seal(tenant, random_part)


def belongs_to(turn_id: str, tenant: str) -> bool:
    if not _TURN_ID.fullmatch(turn_id):  # 32 hex characters: anything else names no turn (and compare_digest
        return False  # takes ASCII only)
    return hmac.compare_digest(turn_id[RANDOM_HEX:], _seal(tenant, turn_id[:RANDOM_HEX]))
