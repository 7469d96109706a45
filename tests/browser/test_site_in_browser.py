"""The course website in a real browser, offline: a diagram, a plot, the navigation, search.

A reader opens the site's home, which is the start page, follows the sidebar to a lesson, sees
its diagram and its figures drawn, and searches the course. Chromium may reach only the site's
own loopback server: any other request is refused and fails the test, so a diagram that needs
a CDN shows up here as a failure.
"""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from course.paths import ROOT

# The first test to need the site may wait for notebooks the run has not executed yet.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]

SCREENSHOTS = ROOT / "test-artifacts" / "browser"
DRAWN_DIAGRAMS = "els => els.filter(e => e.querySelector('svg')).length"
LOADED_PLOTS = "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(website):
    out, built = website
    assert built.code == 0, "the site's build failed:\n" + "\n".join(built.warnings)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def reader(browser, site_url):
    """A page that may load only from the site, with what it tried elsewhere and its errors."""
    page = browser.new_page()
    outside, errors = [], []

    def route(request_route):
        if request_route.request.url.startswith(site_url):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page, outside, errors
    page.close()


def test_the_site_shows_diagrams_plots_navigation_and_search_offline(reader, site_url):
    page, outside, errors = reader
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(site_url)  # the home is the start page
    page.wait_for_url("**/notebooks/index.html")
    assert "Distributed-Systems Design Patterns" in page.title()
    sidebar = page.locator("nav.bd-docs-nav")
    assert sidebar.locator(".caption-text").all_inner_texts() == [
        "Beginner", "Intermediate", "Advanced", "Expert", "Capstone"]
    page.wait_for_function(f"() => ({DRAWN_DIAGRAMS})([...document.querySelectorAll('.mermaid')])"
                           " >= 1")

    sidebar.get_by_role("link", name="Circuit Breaker", exact=True).click()
    page.wait_for_url("**/notebooks/resilience/circuit-breaker.html")
    assert page.locator("h1").first.inner_text().startswith("Circuit Breaker")
    page.wait_for_function(f"() => ({DRAWN_DIAGRAMS})([...document.querySelectorAll('.mermaid')])"
                           " >= 1")
    page.wait_for_function(f"() => ({LOADED_PLOTS})([...document.querySelectorAll("
                           "'.cell_output img')]) >= 3")
    launch = page.locator(".dropdown-launch-buttons a")
    assert any("mybinder.org" in (link.get_attribute("href") or "") for link in launch.all())
    page.screenshot(path=str(SCREENSHOTS / "site-circuit-breaker.png"))

    page.goto(site_url + "search.html?q=bulkhead")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for()
    assert any("Bulkhead" in text for text in results.all_inner_texts())

    assert outside == [], f"the site asked for what is not on it: {outside}"
    assert errors == [], f"scripts failed on the site: {errors}"
