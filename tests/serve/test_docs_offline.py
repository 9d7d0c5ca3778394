"""``/docs`` and ``/redoc`` work without internet (issue 22): their assets come from the service.

Before, FastAPI's pages loaded Swagger UI from a CDN: on a machine without internet
``/docs`` was a blank page. The plain tests check that the pages name no other host and
that every asset they name is served; the browser test opens both pages in Debian's
headless chromium with every host name but 127.0.0.1 unresolvable (no internet) and waits
for the API to be rendered. It skips without chromium, unless
``SESSIONREC_REQUIRE_SERVICES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from sessionrec.serve.docs import ASSETS, ASSETS_PACKAGE, REDOC_POLICY

from .test_demo_browser import chrome_driver

OTHER_HOST = re.compile(r"(https?:)?//[a-z0-9]", re.I)


def referenced(html: str) -> list[str]:
    """The ``src`` and ``href`` of a page, and the schema URL its script loads."""
    return re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/docs",
            {
                "/docs/static/swagger-ui-bundle.js",
                "/docs/static/swagger-ui.css",
                "/docs/static/favicon.png",
                "/openapi.json",
            },
        ),
        ("/redoc", {"/docs/static/redoc.standalone.js", "/docs/static/favicon.png"}),
    ],
)
def test_documentation_pages_name_no_other_host(client, page, expected):
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not OTHER_HOST.search(html), "the page names another host"
    assert set(referenced(html)) == expected
    for url in referenced(html):
        assert client.get(url).status_code == 200, url


def test_swagger_ui_does_not_send_the_schema_to_the_online_validator(client):
    assert '"validatorUrl": null' in client.get("/docs").text


def test_redoc_may_not_fetch_anything_from_another_host(client):
    policy = client.get("/redoc").headers["content-security-policy"]
    assert policy == REDOC_POLICY
    assert "default-src 'none'" in policy and "img-src 'self' data:" in policy


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_are_served_from_the_package_with_their_type(client, name):
    response = client.get(f"/docs/static/{name}")
    assert response.status_code == 200
    assert response.content == (resources.files(ASSETS_PACKAGE) / "static" / name).read_bytes()
    kind = {"js": "text/javascript", "css": "text/css", "png": "image/png"}[name.rsplit(".")[-1]]
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/docs/static/core.py", "/docs/static/..%2Fcore.py", "/docs/static/"]
)
def test_only_the_listed_assets_are_served(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_documentation_routes_stay_out_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


# ------------------------------------------------------------------ browser
@pytest.fixture
def offline_browser() -> Iterator[Any]:
    """Headless chromium that can reach 127.0.0.1 and nothing else (names do not resolve)."""
    yield from chrome_driver("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_documentation_renders_in_a_browser_without_internet(start_service, shop, offline_browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    service = start_service(str(shop.markov_dir), "--popularity", str(shop.train_file))
    url = service.wait_ready().url
    browser = offline_browser
    wait = WebDriverWait(browser, 30)

    browser.get(url + "/docs")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary"))
    title = browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert title.startswith("sessionrec")
    operations = [
        " ".join(e.text.split()[:2])
        for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary")
    ]
    assert "POST /v1/recommendations" in operations
    assert "POST /v1/sessions/{session_id}/events" in operations
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(name.startswith(url + "/") for name in loaded)
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]

    browser.get(url + "/redoc")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "redoc h1"))
    assert browser.find_element(By.CSS_SELECTOR, "redoc h1").text.startswith("sessionrec")
    assert "/v1/recommendations" in browser.find_element(By.TAG_NAME, "redoc").text
    # The only complaint allowed: the policy refused ReDoc's logo from Redocly's CDN.
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert all(e["source"] == "security" and "cdn.redoc.ly" in e["message"] for e in errors)
