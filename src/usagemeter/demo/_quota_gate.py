"""The demo host asks usagemeter before metered work, as a real host does, so hard limits hold.

Before a chat message is answered the host calls ``GET /api/v1/quotas/{feature}/check`` for each
use it is about to make; a refused AI reply is not generated (its tokens neither), a refused
export not made. When the API cannot answer, the host goes ahead (fails open): the demo is there
to produce traffic, and the check's own answers are the API's business, not the demo's.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from usagemeter.demo._traffic import AI_CONTENT_GENERATION, AI_TOKENS, CHAT_MESSAGES, FeatureUse

CHECK_TIMEOUT_SECONDS = 2.0
#: At most one warning per this many seconds while the API does not answer.
WARN_EVERY_SECONDS = 60.0
#: The uses of one AI reply: refused together, since a reply is either generated or not.
REPLY_FEATURES = frozenset({AI_CONTENT_GENERATION, AI_TOKENS})

_logger = logging.getLogger("usagemeter.demo")


class QuotaGate:
    """Asks the API's quota check, as an admin naming the user, whether a use is allowed."""

    def __init__(self, api_url: str, token: str) -> None:
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._warned_at = float("-inf")

    def allows(self, use: FeatureUse) -> bool:
        """Whether the API allows ``use`` now; True when the API cannot say."""
        query = urllib.parse.urlencode({"user_id": use.user_id, "amount": use.amount})
        feature = urllib.parse.quote(use.feature_key, safe="")
        request = urllib.request.Request(f"{self._base}/quotas/{feature}/check?{query}", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_SECONDS) as response:
                return bool(json.load(response)["allowed"])
        except urllib.error.HTTPError as error:
            # 404: the user's plan does not meter this feature, so nothing limits it.
            if error.code != 404:
                self._warn(f"answered {error.code}")
            return True
        except (OSError, ValueError, KeyError) as error:
            self._warn(f"cannot be read ({error})")
            return True

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            _logger.warning("the quota check at %s %s; the demo goes ahead unchecked", self._base, what)


def admitted(uses: list[FeatureUse], allows: Callable[[FeatureUse], bool]) -> list[FeatureUse]:
    """The uses of one chat message that go ahead: none if the message is refused, a reply only whole."""
    message = [use for use in uses if use.feature_key == CHAT_MESSAGES]
    if not all(allows(use) for use in message):
        return []
    reply = [use for use in uses if use.feature_key in REPLY_FEATURES]
    if not all(allows(use) for use in reply):
        reply = []
    others = [use for use in uses if use.feature_key not in REPLY_FEATURES and use.feature_key != CHAT_MESSAGES]
    return message + reply + [use for use in others if allows(use)]
