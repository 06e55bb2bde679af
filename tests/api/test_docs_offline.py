"""The API docs pages load nothing from another host: Swagger UI and ReDoc come from the app (api.web.docs)."""

import re

import pytest


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_reference_no_external_host_and_their_assets_are_served(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text, re.I), "an external URL in the page"
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        a = client.get(asset)
        assert a.status_code == 200 and len(a.content) > 100, asset
    csp = r.headers["content-security-policy"]
    assert "http" not in csp and "jsdelivr" not in csp and "googleapis" not in csp
    assert client.get("/openapi.json").status_code == 200
