"""Simulated chat traffic: who writes, which messages get an AI reply, which end in an export."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

CHAT_MESSAGES = "chat_messages"
AI_CONTENT_GENERATION = "ai_content_generation"
DOCUMENT_EXPORT = "document_export"
#: The tokens of each AI reply, sliced by model.
AI_TOKENS = "ai_tokens"
MODEL_ATTRIBUTE = "model"

DEFAULT_USERS: tuple[str, ...] = ("alice", "bob", "carol", "dave")
DEFAULT_SEED = 20240601

AI_REPLY_PROBABILITY = 0.75
EXPORT_PROBABILITY = 0.03
MODELS: tuple[str, ...] = ("gpt-4o-mini", "claude-haiku")
MODEL_WEIGHTS: tuple[float, ...] = (0.6, 0.4)
EXPORT_FORMATS: tuple[str, ...] = ("pdf", "docx", "markdown")


@dataclass(frozen=True)
class DemoUser:
    """A simulated customer: their plan and their share of the chat messages."""

    user_id: str
    plan: str
    activity: float


# `usagemeter up --demo` puts each user on their plan (one of the shipped plans.toml's), unless they
# already have one. carol is on the free plan (50 AI generations a month): at 5 messages/s she writes
# ~0.4 messages/s, ~0.3 of which get an AI reply, so she passes 80 % of her limit after about two minutes.
KNOWN_USERS: dict[str, DemoUser] = {
    "alice": DemoUser("alice", "pro", 0.42),
    "bob": DemoUser("bob", "enterprise", 0.30),
    "carol": DemoUser("carol", "free", 0.08),
    "dave": DemoUser("dave", "pro", 0.20),
}


def demo_users(user_ids: Sequence[str]) -> list[DemoUser]:
    """Profiles for the given ids; unknown users get a Zipf-like share by position."""
    return [
        KNOWN_USERS.get(user_id) or DemoUser(user_id, "pro", 1 / (index + 2)) for index, user_id in enumerate(user_ids)
    ]


@dataclass(frozen=True)
class FeatureUse:
    """One metered use, as the host service reports it."""

    feature_key: str
    user_id: str
    metadata: dict[str, str | int] = field(default_factory=dict)
    #: The quantity in the feature's unit (uses, or tokens).
    amount: int = 1


class ChatTraffic:
    """A reproducible stream of chat messages and the feature uses each one causes."""

    def __init__(self, users: Sequence[DemoUser], seed: int = DEFAULT_SEED) -> None:
        if not users:
            raise ValueError("the demo needs at least one user")
        self._users = list(users)
        self._weights = [user.activity for user in users]
        self._random = random.Random(seed)

    def next_message(self) -> list[FeatureUse]:
        """The feature uses caused by the next chat message."""
        user = self._random.choices(self._users, weights=self._weights)[0].user_id
        uses = [FeatureUse(CHAT_MESSAGES, user)]
        if self._random.random() < AI_REPLY_PROBABILITY:
            reply = self._ai_reply()
            uses.append(FeatureUse(AI_CONTENT_GENERATION, user, reply))
            tokens = int(reply["prompt_tokens"]) + int(reply["completion_tokens"])
            uses.append(FeatureUse(AI_TOKENS, user, {MODEL_ATTRIBUTE: reply[MODEL_ATTRIBUTE]}, amount=tokens))
        if self._random.random() < EXPORT_PROBABILITY:
            uses.append(FeatureUse(DOCUMENT_EXPORT, user, {"format": self._random.choice(EXPORT_FORMATS)}))
        return uses

    def _ai_reply(self) -> dict[str, str | int]:
        return {
            MODEL_ATTRIBUTE: self._random.choices(MODELS, weights=MODEL_WEIGHTS)[0],
            "prompt_tokens": self._random.randint(20, 600),
            "completion_tokens": self._random.randint(40, 900),
        }
