"""The demo storefront: ``/demo``, its static files and catalog listing, and a real browser.

The plain tests use the app test client on the tiny shop of ``conftest.py`` (items 1-13 in
shoes/shirts/hats, 2 and 6 sold out, no popularity column: row order is the shop order).

The browser test runs what ``make demo`` runs, ``sessionrec demo`` (smaller), as a real
process on a free port, and drives Debian's headless ``chromium`` through Selenium and
Debian's ``chromedriver`` (no browser download): it clicks running shoes, sports shorts and
a fitness tracker, checks that the recommendations change after each click and end in
sportswear, that reset clears the session, and saves screenshots to
``$SESSIONREC_ARTIFACTS`` (else the test's tmp folder; the path is printed). Without
chromium it skips, unless ``SESSIONREC_REQUIRE_SERVICES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi.testclient import TestClient

from sessionrec.data.synthetic import demo_session
from sessionrec.demo import category_share
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig
from sessionrec.serve.routes.demo import CONTENT_SECURITY_POLICY

from .conftest import REQUIRE_SERVICES, THREADS_ENV, free_port, wait_until

STATIC = Path(__file__).resolve().parents[2] / "src" / "sessionrec" / "serve" / "static"


# ------------------------------------------------------------ plain HTTP tests
@pytest.fixture
def demo_client(make_config: Callable[..., ServeConfig], shop: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_config(catalog=str(shop.catalog_csv)))) as client:
        yield client


def test_demo_page_and_static_files_are_served_with_a_strict_policy(demo_client):
    page = demo_client.get("/demo")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    html = page.text
    for element in ('id="products"', 'id="trail"', 'id="recs"', 'id="reset"', 'id="variant"'):
        assert element in html
    assert '<meta name="viewport"' in html
    assert demo_client.get("/demo/").text == html
    css = demo_client.get("/demo/static/demo.css")
    js = demo_client.get("/demo/static/demo.js")
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert css.text == (STATIC / "demo.css").read_text()
    assert js.text == (STATIC / "demo.js").read_text()


@pytest.mark.parametrize(
    "path", ["/demo/static/app.py", "/demo/static/..%2Fapp.py", "/demo/static/demo.html"]
)
def test_only_the_listed_static_files_are_served(demo_client, path):
    response = demo_client.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_the_page_makes_no_external_requests_and_never_parses_markup():
    for name in ("demo.html", "demo.css", "demo.js"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9]", text, re.I), f"{name} names another host"
        assert "@import" not in text and ".innerHTML" not in text and "eval(" not in text
    assert "textContent" in (STATIC / "demo.js").read_text()


def test_catalog_listing_groups_items_by_category_in_shop_order(demo_client):
    listing = demo_client.get("/demo/catalog.json").json()
    assert listing["items"] == 13
    categories = listing["categories"]
    assert [c["name"] for c in categories] == ["shoes", "shirts", "hats"]
    assert [c["count"] for c in categories] == [4, 4, 5]
    shoes = categories[0]["items"]
    assert [i["item_id"] for i in shoes] == ["1", "2", "3", "4"]
    assert shoes[1] == {"item_id": "2", "name": "Item 2", "available": False, "price": 2.99}
    assert all(c["group"] is None for c in categories)  # this catalog has no intent column

    short = demo_client.get("/demo/catalog.json?per_category=2").json()
    assert [[i["item_id"] for i in c["items"]] for c in short["categories"]] == [
        ["1", "2"],
        ["5", "6"],
        ["9", "10"],
    ]
    assert short["items"] == 13 and [c["count"] for c in short["categories"]] == [4, 4, 5]
    for bad in ("0", "201", "x"):
        response = demo_client.get(f"/demo/catalog.json?per_category={bad}")
        assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_catalog_listing_puts_best_sellers_first_and_keeps_markup_as_text(
    make_config, shop, tmp_path
):
    catalog = tmp_path / "catalog.csv"
    pl.DataFrame(
        {
            "item_id": [1, 2, 3, 5],
            "name": ["Plain", "<img src=x onerror=alert(1)>", "Third", "Shirt"],
            "category": ["shoes", "shoes", "shoes", "shirts"],
            "intent": ["wear", "wear", "wear", "wear"],
            "popularity_rank": [3, 1, 2, 1],
        }
    ).write_csv(catalog)
    with TestClient(create_app(make_config(catalog=str(catalog)))) as client:
        listing = client.get("/demo/catalog.json").json()
    shoes, shirts = listing["categories"]
    assert [i["item_id"] for i in shoes["items"]] == ["2", "3", "1"]
    assert shoes["items"][0]["name"] == "<img src=x onerror=alert(1)>"
    assert shoes["group"] == shirts["group"] == "wear"


def test_without_a_catalog_the_page_loads_but_lists_nothing(client):
    assert client.get("/demo").status_code == 200
    response = client.get("/demo/catalog.json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_demo_routes_stay_out_of_the_api_schema(demo_client):
    paths = demo_client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/demo")]


# ------------------------------------------------------------------ browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
DEMO_EVENTS = 60_000
DEMO_SEED = 3


def require_browser() -> None:
    problems = []
    if CHROMIUM is None or CHROMEDRIVER is None:
        problems.append(
            "chromium/chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("selenium is not installed (pip install 'sessionrec[dev]')")
    if problems:
        message = "; ".join(problems)
        if REQUIRE_SERVICES:
            pytest.fail(message + " and SESSIONREC_REQUIRE_SERVICES=1")
        pytest.skip(message)


def artifact_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SESSIONREC_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``sessionrec demo`` as a real process: trains, saves, then serves on a free port."""
    require_browser()
    port = free_port()
    folder = tmp_path / "demo"
    log_path = tmp_path / "demo.log"
    command = [sys.executable, "-m", "sessionrec", "demo", "--events", str(DEMO_EVENTS)]
    command += ["--seed", str(DEMO_SEED), "--output", str(folder), "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **THREADS_ENV}
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"demo exited: {log_path.read_text()[-2000:]}")
        try:
            return httpx.get(url + "/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 150, f"the demo service on {url}")
        assert f"{url}/demo" in log_path.read_text()  # the announced address
        yield url, folder
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # what Ctrl-C after `make demo` sends
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def chrome_driver(*extra_flags: str) -> Iterator[Any]:
    """Headless chromium with the browser console logged (skips or fails as
    :func:`require_browser` says); ``extra_flags`` are added to the standard ones."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        *extra_flags,
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chrome_driver()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_storefront_in_a_real_browser_recommends_sportswear(demo_service, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, folder = demo_service
    catalog = pl.read_csv(folder / "catalog.csv")
    session = demo_session(catalog)  # the best seller of each demo category
    names = dict(zip(catalog["item_id"].to_list(), catalog["name"].to_list(), strict=True))
    wait = WebDriverWait(browser, 20)

    browser.get(url + "/demo")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    options = [
        o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#variant option")
    ]
    assert options == ["", "sr", "vsknn"]
    recs = browser.find_element(By.ID, "recs")

    def rec_ids() -> list[str]:
        return [
            li.get_attribute("data-item-id") for li in recs.find_elements(By.CSS_SELECTOR, "li.rec")
        ]

    lists = []
    for clicks, item in enumerate(session, 1):
        before = int(recs.get_attribute("data-updates"))
        name = names[item]
        # Located as a visitor would: by the product's name on the page.
        button = browser.find_element(
            By.XPATH, f"//button[contains(@class,'product')][span[@class='name'][text()='{name}']]"
        )
        assert button.get_attribute("data-item-id") == str(item)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        wait.until(lambda d, n=before: int(recs.get_attribute("data-updates")) == n + 1)
        assert recs.get_attribute("data-event-count") == str(clicks)
        trail = browser.find_elements(By.CSS_SELECTOR, "#trail li")
        assert [li.get_attribute("data-item-id") for li in trail] == [
            str(i) for i in session[:clicks]
        ]
        ids = rec_ids()
        assert len(ids) == 10 and not set(ids) & {str(i) for i in session[:clicks]}
        lists.append(ids)
    assert lists[0] != lists[-1]  # the list follows the session, not the first click

    final = [(int(i), 0.0) for i in lists[-1]]
    assert category_share(final, catalog, "sportswear/fitness") >= 0.9
    shown = [
        li.get_attribute("data-category") for li in recs.find_elements(By.CSS_SELECTOR, "li.rec")
    ]
    intent = dict(zip(catalog["category"].to_list(), catalog["intent"].to_list(), strict=False))
    assert sum(intent[c] == "sportswear/fitness" for c in shown) >= 9
    text = recs.text
    assert names[int(lists[-1][0])] in text  # names, not ids
    assert re.search(r"\d\.\d{3}", text)  # scores shown

    # When the service explains (explain=true), the page says why; otherwise it renders plain.
    answer = httpx.post(
        f"{url}/v1/recommendations?explain=true",
        json={"items": [str(i) for i in session], "k": 10, "variant": "sr", "details": True},
    ).json()
    if any("reason" in item for item in answer["items"]):
        assert "because you viewed" in text or "similar sessions" in text

    artifacts = artifact_dir(tmp_path)
    desktop = artifacts / "demo-storefront.png"
    assert browser.save_screenshot(str(desktop))
    browser.set_window_size(390, 844)  # a phone: the session panel comes first
    browser.execute_script("window.scrollTo(0, 0)")
    phone = artifacts / "demo-storefront-phone.png"
    assert browser.save_screenshot(str(phone))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px wide)"
    print(f"screenshots: {desktop} {phone}")

    # No request left this service (the CSP forbids it; this checks what actually loaded).
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(r.startswith(url + "/") for r in resources)
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]

    # The selector forces an A/B variant: the same session, answered by the other model.
    from selenium.webdriver.support.ui import Select

    browser.set_window_size(1280, 900)
    for variant in ("vsknn", "sr"):
        before = int(recs.get_attribute("data-updates"))
        Select(browser.find_element(By.ID, "variant")).select_by_value(variant)
        wait.until(lambda d, n=before: int(recs.get_attribute("data-updates")) == n + 1)
        assert f"(variant {variant})" in browser.find_element(By.ID, "served-by").text
        assert recs.get_attribute("data-event-count") == str(len(session))
        forced = [(int(i), 0.0) for i in rec_ids()]
        assert len(forced) == 10 and category_share(forced, catalog, "sportswear/fitness") >= 0.9

    # Add to cart, rank for a purchase (the carted item comes first), then buy the cart.
    Select(browser.find_element(By.ID, "variant")).select_by_value("vsknn")
    wait.until(lambda d: "(variant vsknn)" in d.find_element(By.ID, "served-by").text)
    before = int(recs.get_attribute("data-updates"))
    browser.find_element(By.ID, "add-to-cart").click()
    wait.until(lambda d, n=before: int(recs.get_attribute("data-updates")) == n + 1)
    steps = browser.find_elements(By.CSS_SELECTOR, "#trail li")
    assert steps[-1].get_attribute("data-event-type") == "cart"
    assert steps[-1].get_attribute("data-item-id") == str(session[-1])
    assert recs.get_attribute("data-event-count") == str(len(session) + 1)
    assert browser.find_element(By.ID, "cart-count").get_attribute("data-count") == "1"
    before = int(recs.get_attribute("data-updates"))
    Select(browser.find_element(By.ID, "objective")).select_by_value("purchase")
    wait.until(lambda d, n=before: int(recs.get_attribute("data-updates")) == n + 1)
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")
    assert rec_ids()[0] == str(session[-1])  # the visitor's cart is the best purchase candidate
    before = int(recs.get_attribute("data-updates"))
    browser.find_element(By.ID, "checkout").click()
    wait.until(lambda d, n=before: int(recs.get_attribute("data-updates")) == n + 1)
    steps = browser.find_elements(By.CSS_SELECTOR, "#trail li")
    assert steps[-1].get_attribute("data-event-type") == "purchase"
    assert recs.get_attribute("data-event-count") == str(len(session) + 2)
    assert browser.find_element(By.ID, "cart-count").get_attribute("data-count") == "0"
    Select(browser.find_element(By.ID, "objective")).select_by_value("")

    # Reset: a new anonymous session with an empty trail and no recommendations.
    old_session = recs.get_attribute("data-session")
    before = int(recs.get_attribute("data-updates"))
    browser.find_element(By.ID, "reset").click()
    wait.until(lambda d: int(recs.get_attribute("data-updates")) == before + 1)
    assert browser.find_elements(By.CSS_SELECTOR, "#trail li") == []
    assert rec_ids() == [] and recs.get_attribute("data-session") != old_session
