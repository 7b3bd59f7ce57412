"""Screenshots of the main pages for the README, from a running workbench.

bin/start &                      # note the login it prints
.venv/bin/python docs/take_screenshots.py --url http://127.0.0.1:8000 --user curator --password ...

The conditional search needs a backward-search model on a collection with styles (the demo has none); for
its screenshot alone, on such a workbench (README, "Conditional search"):
.venv/bin/python docs/take_screenshots.py --password ... --only-conditional --query 42 \
    --condition style=Cubism
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="curator")
    parser.add_argument("--password", required=True)
    parser.add_argument("--query", type=int, help="artwork id for the conditional search's screenshot")
    parser.add_argument("--condition", action="append", default=[], help="LABEL=CLASS, repeatable")
    parser.add_argument("--only-conditional", action="store_true", help="only the conditional search")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(base_url=args.url, viewport={"width": 1280, "height": 860})
        page.goto("/login/")
        page.fill("input[name=username]", args.user)
        page.fill("input[name=password]", args.password)
        page.click("button[type=submit]")
        page.wait_for_selector("h1")
        if args.query:
            conditions = "".join(f"&condition={c}" for c in args.condition)
            page.goto(f"/conditional/?artwork={args.query}{conditions}&top=12")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=OUT / "conditional.png", full_page=True)
        if args.only_conditional:
            browser.close()
            return
        page.screenshot(path=OUT / "dashboard.png")
        page.click(".card a[href^='/collections/']:nth-of-type(1)")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "collection.png")
        page.click(".thumbgrid a:nth-of-type(3)")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "artwork.png")
        page.goto("/jobs/")
        page.screenshot(path=OUT / "jobs.png")
        first_job = page.locator("tr[data-job-id] a").first
        first_job.click()
        page.screenshot(path=OUT / "job.png")
        page.goto("/review/")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "queue.png")
        page.locator("table.queue a").first.click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "review.png")
        page.keyboard.press("p")
        page.get_by_role("button", name="Overlay").click()
        page.wait_for_timeout(500)
        page.screenshot(path=OUT / "review-pair.png")
        page.keyboard.press("Escape")
        page.keyboard.press("?")
        page.screenshot(path=OUT / "review-keys.png")
        page.goto("/rounds/")
        page.screenshot(path=OUT / "rounds.png", full_page=True)
        page.goto("/map/")
        page.wait_for_function("document.getElementById('map-status').textContent.includes('artworks')")
        page.screenshot(path=OUT / "map.png")
        page.select_option("#map-layout", "time")
        page.screenshot(path=OUT / "map-time.png")
        artwork = page.evaluate(
            "fetch('/map/' + document.getElementById('map-version').value + '.json')"
            ".then(r => r.json()).then(d => d.ids[0])"
        )
        page.goto(f"/search/?artwork={artwork}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=OUT / "search.png", full_page=True)
        page.goto("/review/simulations/")
        simulation = page.locator("a[href^='/review/simulations/'][href$='/']").last
        if simulation.count():  # a simulated review was run (simulate_review, bench/loop_yield.py --keep)
            simulation.click()
            page.wait_for_selector("#discovery-plot")
            page.screenshot(path=OUT / "simulation.png", full_page=True)
        browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
