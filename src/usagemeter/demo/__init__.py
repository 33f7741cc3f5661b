"""The demo host service: a chat backend whose AI replies are a metered feature.

``run_demo`` simulates a few users chatting (``chat_messages``), getting AI replies
(``ai_content_generation`` with model and token metadata) and now and then exporting a
document (``document_export``), and reports every use through usagemeter's instrumentation.
Users also sign up and upgrade (``conversion.count``), and a "reports" worker runs background
jobs, some of which fail, reporting heartbeats, queue depth and jobs (``worker.*``): a real arq
worker over Redis when ``redis_url`` is given (``USAGEMETER_DEMO_REDIS_URL``), else a thread.
Given the API (``USAGEMETER_DEMO_API_URL``, ``USAGEMETER_DEMO_API_TOKEN``), the host checks each
use against the user's quota first, as a real host does, so hard limits hold.
"""

from __future__ import annotations

from usagemeter.demo._operations import (
    REPORTS_QUEUE,
    REPORTS_WORKER_ID,
    SIGNUP,
    UPGRADE,
    BusinessTraffic,
    ReportJob,
    ReportsQueueUnavailable,
)
from usagemeter.demo._quota_gate import QuotaGate, admitted
from usagemeter.demo._runner import DEMO_SERVICE_NAME, run_demo
from usagemeter.demo._settings import DemoSettings
from usagemeter.demo._traffic import (
    AI_CONTENT_GENERATION,
    CHAT_MESSAGES,
    DEFAULT_SEED,
    DEFAULT_USERS,
    DOCUMENT_EXPORT,
    KNOWN_USERS,
    ChatTraffic,
    DemoUser,
    FeatureUse,
    demo_users,
)

__all__ = [
    "AI_CONTENT_GENERATION",
    "CHAT_MESSAGES",
    "DEFAULT_SEED",
    "DEFAULT_USERS",
    "DEMO_SERVICE_NAME",
    "DOCUMENT_EXPORT",
    "KNOWN_USERS",
    "REPORTS_QUEUE",
    "REPORTS_WORKER_ID",
    "SIGNUP",
    "UPGRADE",
    "BusinessTraffic",
    "ChatTraffic",
    "DemoSettings",
    "DemoUser",
    "FeatureUse",
    "QuotaGate",
    "ReportJob",
    "ReportsQueueUnavailable",
    "admitted",
    "demo_users",
    "run_demo",
]
