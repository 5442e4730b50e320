"""The README's pictures of `convostore serve`: its main pages, shot in headless Chromium.

    python docs/screenshots.py            # writes docs/serve-*.png

The archive is the browser tests' (tests/fixtures_serve.py: recorded through the real SDK
against the sandbox), so the pictures show what the tests check, plus 30 older
conversations over the 60 days before (bench/bench_scale.py's generator) so the list and
the chart look like an archive in use. Not run by the test suite: re-run it when the pages
change.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_scale  # noqa: E402

from tests.fixtures_browser import chromium_path  # noqa: E402
from tests.fixtures_serve import build_archive, serving  # noqa: E402

DOCS = ROOT / "docs"


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        recording = build_archive(Path(tmp) / "archive.db")
        archive = next(recording)
        ids = archive.ids
        from convostore.archive import import_jsonl

        older = Path(tmp) / "older.jsonl"
        bench_scale.generate(300, older)
        import_jsonl(archive.store, older)
        try:
            with serving(archive) as url, sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=["--disable-gpu"])
                page = browser.new_page(viewport={"width": 1200, "height": 760})

                def shoot(name: str, full: bool = True) -> None:
                    path = DOCS / f"serve-{name}.png"
                    page.screenshot(path=str(path), full_page=full)
                    print(f"wrote {path.relative_to(ROOT)}")

                page.goto(f"{url}/")
                page.locator('[data-testid="conv-row"]').first.wait_for()
                shoot("list", full=False)  # the first screenful: the rest is more of the same
                page.goto(f"{url}/conversations/{ids['root']}?branch={ids['t3']}")
                page.locator('[data-testid="thought"] summary').first.click()
                shoot("conversation")
                page.goto(f"{url}/runs/{archive.run}")
                page.locator('[data-testid="comparison"]').wait_for()
                shoot("run")
                page.goto(f"{url}/stats?days=60")
                page.locator('[data-testid="stats-chart"]').wait_for()
                shoot("stats", full=False)
                browser.close()
        finally:
            next(recording, None)  # stops the sandbox, closes the recorder's store


if __name__ == "__main__":
    main()
