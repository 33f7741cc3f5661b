"""A path with or without a trailing slash is never redirected to a host the request names."""

from __future__ import annotations

import pytest

from tests.api.api_support import bearer


@pytest.mark.parametrize("path", ["/api/v1/quotas/", "/api/v1/health/", "/docs/", "/api/v1/admin/plans/"])
def test_a_trailing_slash_is_not_redirected_to_the_host_header(shared_api, path):
    response = shared_api.get(
        path, headers={"Host": "evil.example", **bearer("ops", admin=True)}, follow_redirects=False
    )
    assert response.status_code == 404
    assert "location" not in response.headers


def test_paths_as_documented_are_served(shared_api):
    assert shared_api.get("/api/v1/quotas", headers=bearer("alice")).status_code == 200
    assert shared_api.get("/api/v1/health").status_code == 200
