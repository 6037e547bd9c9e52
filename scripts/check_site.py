"""Open every page of the built site in a real browser (Debian's chromium, headless, through chromedriver) and
report what a reader would hit: a page that does not load, an image that does not load, an internal link to a
missing page or anchor, a console error. Keeps one screenshot per page. Exit status 1 on any problem.

Usage: python scripts/check_site.py [SITE_DIR] [--screenshots DIR]   (default build/site, build/site-screenshots)
Needs `apt-get install chromium chromium-driver`; no network (pages are opened as file:// URLs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
SKIP = ("_static", "_sources", "_images", ".doctrees")

# Runs in the page: broken images and the page's internal links with their fragments.
PAGE_REPORT = """
const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
const links = [...document.querySelectorAll('a[href]')].map(a => a.href)
    .filter(h => h.startsWith('file:'));
const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
return {ready: document.readyState, title: document.title, broken, links, ids};
"""


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (binary and driver):
        raise SystemExit("check_site needs Debian's chromium and chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--allow-file-access-from-files", "--window-size=1280,2000", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def pages_of(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if not any(part in SKIP for part in p.relative_to(site).parts))


def check_site(site: Path, screenshots: Path) -> list[str]:
    """Every problem found, one line each (empty: the site is fine)."""
    pages = pages_of(site)
    if not pages:
        return [f"{site}: no HTML pages (build the site first: python scripts/build_site.py)"]
    screenshots.mkdir(parents=True, exist_ok=True)
    problems, ids_of, links_of = [], {}, {}
    driver = browser()
    try:
        for page in pages:
            name = page.relative_to(site).as_posix()
            driver.get(page.as_uri())
            for _ in range(50):   # get() returns at the load event; give late scripts up to 5 s to finish
                report = driver.execute_script(PAGE_REPORT)
                if report["ready"] == "complete":
                    break
                time.sleep(0.1)
            driver.save_screenshot(str(screenshots / (name.replace("/", "__") + ".png")))
            if report["ready"] != "complete" or not report["title"]:
                problems.append(f"{name}: did not load (state {report['ready']!r}, title {report['title']!r})")
            problems += [f"{name}: image does not load: {src}" for src in report["broken"]]
            problems += [f"{name}: console {e['level']}: {e['message']}" for e in driver.get_log("browser")
                         if e["level"] == "SEVERE"]
            ids_of[page.resolve()], links_of[name] = set(report["ids"]), report["links"]
    finally:
        driver.quit()
    for name, links in links_of.items():
        for href in links:
            url = urlparse(href)
            target = Path(unquote(url.path))
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{name}: broken link to {target.name} ({href})")
            elif url.fragment and target.suffix == ".html" and target.resolve() in ids_of \
                    and unquote(url.fragment) not in ids_of[target.resolve()]:
                problems.append(f"{name}: link to a missing anchor #{url.fragment} in {target.name}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", nargs="?", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    problems = check_site(args.site, args.screenshots or args.site.parent / "site-screenshots")
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{len(pages_of(args.site))} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
