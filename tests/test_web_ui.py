"""The page at ``GET /`` in a real browser: a ``tagtune serve`` process on 127.0.0.1 with a tiny model,
driven by headless Chromium through selenium.

What the page shows must be what ``POST /predict`` answers for the same text: the marked spans (offsets,
label, text), their scores, the table, the JSON download, and the same markup as ``tagtune predict
--format html`` (:mod:`tagtune.render`). Errors of the service (too long, bad request, busy) are shown
as plain messages. Skipped, with the reason, only where selenium, Chromium or chromedriver is missing
(``scripts/setup.sh`` installs them: ``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import NER_LABELS, WORDS, stop_server, wait_until_healthy
from tagtune.render import Colours, render_text

pytestmark = pytest.mark.browser

MAX_CHARS = 150_000  # a 20,000-word document fits; the oversized text goes over it
TEXT = "Peter Blackburn said the EU rejects German call to boycott British lamb in Brussels."
WAIT = 60


def _browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or skip saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if Path(p).is_file()), None)
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        pytest.skip(f"no {missing} on this machine: apt-get install -y chromium chromium-driver "
                    "(scripts/setup.sh tries; it failed or was not run)")
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(tiny_ner_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny NER model with B-PER favoured a little, so that every test text has entities."""
    import torch
    from transformers import BertForTokenClassification

    path = tmp_path_factory.mktemp("web-ui-model")
    for item in tiny_ner_dir.iterdir():
        shutil.copy(item, path / item.name)
    model = BertForTokenClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.bias[NER_LABELS.index("B-PER")] += 2.0
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def service(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real ``tagtune serve`` process on 127.0.0.1; yields its base URL."""
    _browser_paths()  # skip before starting anything
    port = _free_port()
    log_path = tmp_path_factory.mktemp("web-ui-log") / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from tagtune.cli import main; main()", "serve", str(model_dir), "--host", "127.0.0.1",
         "--port", str(port), "--precision", "fp32", "--threads", "1", "--log_level", "warning",
         "--max_chars", str(MAX_CHARS)],
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base, 90, log_path.read_text)
        yield base
    finally:
        try:
            stop_server(process)
        finally:
            log.close()
    assert process.returncode == 0, log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def page(browser, service):
    """The page, freshly loaded, once it has read the model's metadata."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service + "/")
    WebDriverWait(browser, WAIT).until(lambda d: "backend" in d.find_element("id", "model-info").text)
    return browser


def _predict(service: str, text: str) -> list[dict]:
    response = httpx.post(f"{service}/predict", json={"text": text}, timeout=WAIT)
    assert response.status_code == 200, response.text
    return response.json()["entities"]


def _submit_and_wait(driver, submit) -> None:
    """Run ``submit`` (which starts tagging) and wait until the page has shown the result or an error."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.getElementById('result').dataset.state = 'waiting';"
                          "document.getElementById('error').hidden = true;")
    submit()
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(
        "return document.getElementById('result').dataset.state === 'done'"
        " || !document.getElementById('error').hidden"))


def _marks(driver) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#result mark')].map(m => ({start: +m.dataset.start, "
        "end: +m.dataset.end, label: m.dataset.label, text: m.textContent, title: m.title, cls: m.className}));")


def _spans(entities: list[dict]) -> list[tuple[int, int, str, str]]:
    return [(e["start"], e["end"], e["label"], e["text"]) for e in entities]


def _error(driver) -> str:
    box = driver.find_element("id", "error")
    return box.text if box.is_displayed() else ""


def _set_text(driver, text: str) -> None:
    """Put ``text`` in the text box as a paste would (for text chromedriver cannot type: long, or astral)."""
    driver.execute_script("const box = document.getElementById('text'); box.value = arguments[0];"
                          "box.dispatchEvent(new Event('input'));", text)


def test_typed_text_is_tagged_as_post_predict_answers(page, service, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    box = page.find_element("id", "text")
    box.send_keys(TEXT)
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    assert _error(page) == ""
    expected = _predict(service, TEXT)
    assert expected, "the tiny model should find entities in the test text"
    marks = _marks(page)
    assert _spans(marks) == _spans(expected)
    assert [m["title"] for m in marks] == [f"{e['label']} · score {e['score']:.3f}" for e in expected]
    assert page.execute_script("return document.getElementById('result').textContent") == TEXT

    metadata = httpx.get(f"{service}/metadata").json()
    colours = Colours(metadata["labels"])
    assert [m["cls"] for m in marks] == [f"ent {colours(e['label'])}" for e in expected]
    # The same markup as tagtune predict --format html writes.
    from tagtune.predict import Entity

    entities = [Entity(**e) for e in expected]
    inner = page.execute_script("return document.getElementById('result').innerHTML")
    assert inner == render_text(TEXT, entities, Colours(metadata["labels"]))

    legend = [li.text for li in page.find_elements("css selector", "#legend li")]
    assert legend == Colours(metadata["labels"]).types == ["PER", "LOC", "ORG"]
    info = page.find_element("id", "model-info").text
    assert f"backend {metadata['backend']}" in info and metadata["model"] in info
    rows = [[td.text for td in row.find_elements("tag name", "td")]
            for row in page.find_elements("css selector", "#entities tbody tr")]
    assert rows == [[e["text"], e["label"], f"{e['score']:.3f}", str(e["start"]), str(e["end"])] for e in expected]

    download = page.find_element("id", "download")
    assert download.is_displayed() and download.get_attribute("download") == "entities.json"
    page.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    download.click()
    saved = tmp_path / "entities.json"
    WebDriverWait(page, WAIT).until(lambda d: saved.is_file() and saved.stat().st_size > 0)
    assert json.loads(saved.read_text(encoding="utf-8")) == {"text": TEXT, "entities": expected}


def test_keyboard_only(page, service) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    first = "Angela Merkel visited Paris with John Smith."
    box = page.find_element("id", "text")
    box.send_keys(first)
    _submit_and_wait(page, lambda: box.send_keys(Keys.CONTROL, Keys.ENTER))
    assert _spans(_marks(page)) == _spans(_predict(service, first))

    second = "Mary Jones of Reuters met the Japan team in Tokyo."
    _set_text(page, second)
    box.send_keys(Keys.TAB)  # text box -> "API key" disclosure -> the button
    assert page.switch_to.active_element.tag_name == "summary"
    ActionChains(page).send_keys(Keys.TAB).perform()
    assert page.switch_to.active_element.get_attribute("id") == "tag-button"
    _submit_and_wait(page, lambda: ActionChains(page).send_keys(Keys.ENTER).perform())
    assert _spans(_marks(page)) == _spans(_predict(service, second))


def test_offsets_of_text_beyond_the_bmp(page, service) -> None:
    # The service counts characters (code points), JavaScript counts UTF-16 units: 😀 is one and two.
    text = "😀 Angela Merkel 🇫🇷 visited Paris 👍🏽 with Peter Blackburn 😀😀 in London."
    _set_text(page, text)
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    expected = _predict(service, text)
    assert expected and all(text[e["start"]:e["end"]] == e["text"] for e in expected)
    assert _spans(_marks(page)) == _spans(expected)
    assert page.execute_script("return document.getElementById('result').textContent") == text


def test_service_errors_are_shown_plainly(page, service) -> None:
    box = page.find_element("id", "text")
    _set_text(page, "a" * (MAX_CHARS - 10))
    box.send_keys(" Angela Merkel")  # typed past the limit: 14 characters more
    from selenium.webdriver.support.ui import WebDriverWait

    hint = page.find_element("id", "text-help")
    WebDriverWait(page, WAIT).until(lambda d: f"{MAX_CHARS + 4:,} / {MAX_CHARS:,} characters" in hint.text)
    assert "over" in hint.get_attribute("class").split()
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    response = httpx.post(f"{service}/predict", json={"text": "a" * (MAX_CHARS + 4)})
    assert response.status_code == 413
    assert _error(page) == "Too long: " + response.json()["error"]["message"]
    assert _error(page) == f"Too long: text #0 has {MAX_CHARS + 4} characters; the limit is {MAX_CHARS}"
    assert _marks(page) == [] and not page.find_element("id", "download").is_displayed()

    page.execute_script("const box = document.getElementById('text'); box.value = 'a \\ud800 b';")
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    assert _error(page).startswith("Bad request: text #0 is not valid Unicode")

    # uvicorn answers a full service (--max_concurrent) with a plain-text 503; the page gets one here.
    page.execute_script("window.fetch = () => Promise.resolve(new Response('Service Unavailable', {status: 503}));")
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    assert _error(page).startswith("Server busy: Service Unavailable. The service is handling too many requests")
    page.execute_script("window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));")
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    assert _error(page) == "Cannot reach the service: Failed to fetch"


def test_a_20000_word_document_is_shown_in_chunks(page, service) -> None:
    rng = random.Random(0)
    words = [rng.choice(WORDS).capitalize() if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(20_000)]
    text = " ".join(w + ("." if i % 17 == 16 else "") for i, w in enumerate(words))
    assert len(text) <= MAX_CHARS
    _set_text(page, text)
    page.execute_script(  # count the chunks added to the result, and the main thread's long tasks
        "window.chunks = 0; window.longest = 0;"
        "new MutationObserver(r => { window.chunks += r.length; })"
        "  .observe(document.getElementById('result'), {childList: true});"
        "new PerformanceObserver(l => { for (const e of l.getEntries()) window.longest = Math.max(window.longest,"
        "  e.duration); }).observe({type: 'longtask', buffered: false});")
    started = time.monotonic()
    _submit_and_wait(page, page.find_element("id", "tag-button").click)
    elapsed = time.monotonic() - started
    assert _error(page) == ""
    expected = _predict(service, text)
    assert len(expected) > 400, "enough entities for several chunks"
    assert _spans(_marks(page)) == _spans(expected)
    chunks, longest = page.execute_script("return [window.chunks, window.longest]")
    print(f"20,000 words: {len(expected)} entities in {chunks} chunks; tag + render {elapsed:.1f} s; "
          f"longest main-thread task {longest:.0f} ms")
    assert chunks >= len(expected) // 400
    assert longest < 1000, "the page froze"  # a chunk takes ~100 ms on a loaded 2-core machine

    # The table shows 500 rows at a time (a table is laid out whole whenever rows are added).
    from selenium.webdriver.common.keys import Keys

    def rows() -> int:
        return page.execute_script("return document.querySelectorAll('#entities tbody tr').length")

    more = page.find_element("id", "more-rows")
    assert rows() == 500 and more.text == f"Show 500 more (500 of {len(expected):,} shown)"
    more.send_keys(Keys.ENTER)
    assert rows() == 1000 and more.text == f"Show 500 more (1,000 of {len(expected):,} shown)"
    last = page.find_elements("css selector", "#entities tbody tr")[-1]
    assert [td.text for td in last.find_elements("tag name", "td")][3:] == [str(expected[999]["start"]),
                                                                            str(expected[999]["end"])]
