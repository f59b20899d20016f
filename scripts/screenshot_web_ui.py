"""Screenshot of the page served by ``tagtune serve`` tagging a paragraph of news (docs/web_ui.png).

Starts ``tagtune serve MODEL`` on 127.0.0.1, opens the page in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium), types the paragraph, tags it and saves the viewport as a PNG.

    python scripts/screenshot_web_ui.py --model benchmarks/out/train_f1/tagtune --output docs/web_ui.png
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# Written for the screenshot (not from CoNLL-2003): people, places, organisations, nationalities.
PARAGRAPH = (
    "GENEVA (Reuters) - The World Health Organization said on Tuesday that a team led by Maria Santos will "
    "travel to Nairobi next month to review vaccination programmes with Kenyan officials. The visit follows "
    "talks in Berlin between German Chancellor Olaf Scholz and Kenyan President William Ruto, and a pledge by "
    "Siemens and the Gates Foundation to fund new clinics in Mombasa and Kisumu. Manchester United striker "
    "Marcus Rashford, who grew up in Wythenshawe, backed the campaign in a video released by UNICEF."
)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-extensions", "--hide-scrollbars")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "benchmarks/out/train_f1/tagtune")
    parser.add_argument("--output", type=Path, default=REPO / "docs/web_ui.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--text", default=PARAGRAPH)
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        sys.exit("needs chromium and chromedriver: apt-get install -y chromium chromium-driver")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from tagtune.cli import main; main()", "serve", str(args.model),
                               "--host", "127.0.0.1", "--port", str(port), "--log_level", "warning"])
    base = f"http://127.0.0.1:{port}"
    profile = tempfile.mkdtemp(prefix="tagtune-chromium-")
    driver = None
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                sys.exit(f"tagtune serve exited with status {server.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("tagtune serve did not start in 120 s")
            time.sleep(0.3)

        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={args.width},{args.height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": args.width, "height": args.height, "deviceScaleFactor": 1, "mobile": False})
        driver.get(base + "/")
        WebDriverWait(driver, 60).until(lambda d: "backend" in d.find_element("id", "model-info").text)
        driver.find_element("id", "text").send_keys(args.text)
        driver.find_element("id", "tag-button").click()
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element("id", "result").get_attribute("data-state") == "done")
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.output))
        count = len(driver.find_elements("css selector", "#result mark"))
        print(f"{args.output}: {count} entities marked ({driver.find_element('id', 'model-info').text})")
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
