"""The playground in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).
Upload a real MNIST test digit and read the label; stream text; translate with a heatmap; transcribe a
real spoken-digit recording; recall a corrupted stored image; open a lab page; see a bad input's message;
visit every tab. With ARCHZOO_SCREENSHOTS=DIR each tab's screenshot is saved there, and
with ARCHZOO_SERVE_RUNS=FOLDER the page serves that folder's runs instead of tiny ones (the README's
pictures: ``ARCHZOO_SERVE_RUNS=runs ARCHZOO_SCREENSHOTS=docs/serve pytest tests/serve -k browser``).

Skips with one line when Playwright or a chromium executable is missing: ``apt-get install chromium`` (or
set ARCHZOO_CHROMIUM to a Chrome/Chromium executable) and ``pip install -e '.[dev]'``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'archzoo[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")

import tiny_runs  # noqa: E402
from serving import Served, serving  # noqa: E402
from tiny_runs import DIGIT_LABEL, digit_png  # noqa: E402


def chromium() -> str | None:
    """The system's Chromium (or ARCHZOO_CHROMIUM): Playwright drives it instead of a browser of its own."""
    given = os.environ.get("ARCHZOO_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


pytestmark = pytest.mark.skipif(chromium() is None, reason="no chromium executable: apt-get install chromium "
                                "(or set ARCHZOO_CHROMIUM) to run the browser tests")
SHOTS = os.environ.get("ARCHZOO_SCREENSHOTS")
sync_api.expect.set_options(timeout=60_000)  # a shared CPU, or real runs, may take seconds


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        # --no-sandbox: CI and containers run as root, where chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def runs_of(page_served: Served, tab: str) -> list[dict[str, Any]]:
    return [r for r in page_served.json("/api/runs")[1]["runs"] if r["tab"] == tab]


def needs(page_served: Served, tab: str) -> list[dict[str, Any]]:
    """The runs of ``tab`` (the page checks the first 6); the test skips without one."""
    runs = runs_of(page_served, tab)
    if not runs:
        pytest.skip(f"no {tab} run is served (its data is not staged)")
    return runs[:6]


@pytest.fixture
def page(browser: Any, page_served: Served) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_served.url + "/")
    page.wait_for_selector("#root-line:has-text('runs under')")
    yield page
    page.close()
    assert not errors, errors  # no script error on the page


def drawn(page: Any, selector: str) -> bool:
    """Whether the first image ``selector`` finds is decoded and more than 100 pixels wide (waits for it)."""
    page.wait_for_function("s => { const img = document.querySelector(s); return img && img.complete && "
                           "img.naturalWidth > 100; }", arg=selector)
    return True


def shoot(page: Any, tab: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{tab}.png"), full_page=True)


def test_digits_upload_a_test_digit(page: Any, page_served: Served, tmp_path: Path) -> None:
    runs = needs(page_served, "digits")
    digit = tmp_path / "seven.png"
    digit.write_bytes(digit_png())
    page.set_input_files("#digit-file", str(digit))
    labels = page.locator("#digit-results [data-testid=label]")
    sync_api.expect(labels).to_have_count(len(runs))
    mnist = [r["id"] for r in runs if r["dataset"].startswith("mnist")]
    assert mnist and all(page.locator(f"#digit-results article[data-run='{run}'] [data-testid=label]").inner_text()
                         == str(DIGIT_LABEL) for run in mnist)
    sync_api.expect(page.locator("#digit-maps img")).to_have_count(2)
    assert drawn(page, "#digit-maps img")
    shoot(page, "digits")


def test_digits_drawn_on_the_canvas(page: Any, page_served: Served) -> None:
    runs = needs(page_served, "digits")
    box = page.locator("#digit-canvas").bounding_box()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.15 * box["height"])
    page.mouse.down()
    for k in range(1, 11):  # a vertical stroke: a "1"
        page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + (0.15 + 0.07 * k) * box["height"])
    page.mouse.up()
    labels = page.locator("#digit-results [data-testid=label]")
    sync_api.expect(labels).to_have_count(len(runs))  # classified as the stroke ended ("classify as I draw")
    assert all(label.strip() for label in labels.all_inner_texts())


def test_text_streams_into_every_card(page: Any, page_served: Served) -> None:
    runs = needs(page_served, "text")
    page.click("button[data-tab=text]")
    page.fill("#text-prompt", "JULIET:")
    page.fill("#text-tokens", "1500")
    # record every length the first card's text goes through: streamed text grows in many steps
    page.evaluate("""() => { window.seen = new Set();
        new MutationObserver(() => { const pre = document.querySelector('#text-results pre');
          if (pre) window.seen.add(pre.textContent.length); })
        .observe(document.querySelector('#text-results'), {subtree: true, childList: true, characterData: true}); }""")
    page.click("#text-go")
    cards = page.locator("#text-results article[data-done=true]")
    sync_api.expect(cards).to_have_count(len(runs))
    texts = page.locator("#text-results pre").all_inner_texts()
    assert all(t.startswith("JULIET:") and len(t) > 1000 for t in texts)
    assert page.evaluate("window.seen.size") > 3  # pieces arrived one after another, not in one answer
    assert "tokens/s" in page.locator("#text-results .stats").first.inner_text()
    shoot(page, "text")


def test_translate_shows_output_and_a_heatmap(page: Any, page_served: Served) -> None:
    runs = needs(page_served, "translate")[:1]
    page.click("button[data-tab=translate]")
    page.fill("#translate-sentence", "Ein Mann fährt Fahrrad.")
    page.fill("#translate-beam", "1")
    for box in page.locator("#tab-translate fieldset.runs input").all():
        box.set_checked(box.get_attribute("value") == runs[0]["id"])
    page.click("#translate-go")
    heatmap = page.locator("#translate-results img.heatmap")
    sync_api.expect(heatmap).to_have_count(1)
    assert drawn(page, "#translate-results img.heatmap")
    translation = page.locator("[data-testid=translation]").inner_text()
    assert translation.strip() and translation.isascii()  # English letters (a tiny model's English is poor)
    if page.locator("#translate-results select.head").count():  # a Transformer: one layer and head
        page.select_option("#translate-results select.head", "1")
        sync_api.expect(page.locator("#translate-go")).to_be_enabled()  # redrawn
        sync_api.expect(page.locator("#translate-results img.heatmap")).to_have_count(1)
        assert drawn(page, "#translate-results img.heatmap")
    shoot(page, "translate")


def test_bad_input_shows_its_message(page: Any, page_served: Served, tmp_path: Path) -> None:
    needs(page_served, "text")
    page.click("button[data-tab=text]")
    page.fill("#text-tokens", "5000")
    page.click("#text-go")
    sync_api.expect(page.locator("#text-results .error-line").first).to_contain_text(
        "tokens = 5,000 is more than 2,000: the page allows at most 2,000")
    page.click("button[data-tab=digits]")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")
    page.set_input_files("#digit-file", str(broken))
    sync_api.expect(page.locator("#tab-digits .error")).to_have_text(
        "the image is not a readable image (UnidentifiedImageError); give a PNG or JPEG file")


def test_the_page_without_runs_says_how_to_get_one(browser: Any, tmp_path: Path) -> None:
    page = browser.new_page()
    with serving(tmp_path) as empty:
        page.goto(empty.url + "/")
        sync_api.expect(page.locator("#root-line")).to_contain_text("train one with archzoo train mnist-fast")
        sync_api.expect(page.locator("#tab-digits .empty")).to_contain_text("archzoo train mnist-fast (about a minute)")
    page.close()


def test_models_tab(page: Any) -> None:
    page.click("button[data-tab=models]")
    page.wait_for_selector("#models-list >> text=lenet5")
    page.click("#models-list >> text=lenet5")
    sync_api.expect(page.locator("#tab-models pre")).to_contain_text("parameters: 61,706")
    shoot(page, "models")


def test_images_tab_samples_a_class_and_interpolates(page: Any, page_served: Served) -> None:
    runs = needs(page_served, "images")
    page.click("button[data-tab=images]")
    if runs[0]["model"] == "cgan":
        page.wait_for_selector("#images-class option[value='3']", state="attached")
        page.select_option("#images-class", "3")
    page.click("#images-go")
    sync_api.expect(page.locator("#images-results")).to_be_visible()
    assert drawn(page, "#images-grid")
    page.locator("#images-slider").fill("15")
    sync_api.expect(page.locator("#images-t")).to_have_text("t = 1.00")
    shoot(page, "images")


def test_sentiment_tab(page: Any, page_served: Served) -> None:
    runs = needs(page_served, "sentiment")
    page.click("button[data-tab=sentiment]")
    page.fill("#sentiment-sentence", "a gripping, beautifully acted film")
    page.click("#sentiment-go")
    sync_api.expect(page.locator("#sentiment-results [data-testid=label]")).to_have_count(len(runs))
    assert set(page.locator("#sentiment-results [data-testid=label]").all_inner_texts()) <= {"positive", "negative"}
    shoot(page, "sentiment")


def test_forecast_tab_plots_a_window_and_an_uploaded_csv(page: Any, page_served: Served, tmp_path: Path) -> None:
    runs = needs(page_served, "forecast")
    if runs[0]["dataset"] != "airline-passengers":
        pytest.skip("the CSV below has the airline series' column")
    page.click("button[data-tab=forecast]")
    page.wait_for_selector("#forecast-channel option", state="attached")
    page.click("#forecast-go")
    sync_api.expect(page.locator("#forecast-results")).to_be_visible()
    assert drawn(page, "#forecast-plot")
    shoot(page, "forecast")
    csv = tmp_path / "mine.csv"
    csv.write_text("Month,Passengers\n" + "".join(f"{1950 + m // 12}-{m % 12 + 1:02d},{100 + m}\n" for m in range(48)))
    page.set_input_files("#forecast-file", str(csv))
    page.click("#forecast-go")
    sync_api.expect(page.locator("#forecast-table")).to_contain_text("+12\t", use_inner_text=False)  # 12 steps after the CSV


def test_speech_transcribes_an_uploaded_recording(page: Any, page_served: Served, tmp_path: Path) -> None:
    import archzoo

    runs = needs(page_served, "speech")
    if tiny_runs.data_dir() is None or not tiny_runs.speech_wav().is_file():
        pytest.skip("../shared/data/spoken-digits not staged: no recording to upload")
    page.click("button[data-tab=speech]")
    page.set_input_files("#speech-file", str(tiny_runs.speech_wav()))  # a real test recording: "seven"
    shown = page.locator("#speech-results [data-testid=transcript]")
    sync_api.expect(shown).to_have_count(len(runs))
    root = page_served.app.state.server.catalog.root
    for run in runs:  # what the CLI (archzoo transcribe) reads in the same file
        expected = archzoo.load(root / run["id"], device="cpu").transcribe(tiny_runs.speech_wav()).texts[0]
        card = page.locator(f"#speech-results article[data-run='{run['id']}']")
        assert card.locator("[data-testid=transcript]").inner_text() == (expected or "(nothing)")
        if run["task"] == "connected_digits":
            assert drawn(page, f"#speech-results article[data-run='{run['id']}'] img.posteriors")
    if any(r["task"] == "spoken_digits" for r in runs):
        assert drawn(page, "#speech-features img")
    shoot(page, "speech")
    notes = tmp_path / "notes.wav"
    notes.write_text("seven\n")
    page.set_input_files("#speech-file", str(notes))
    sync_api.expect(page.locator("#tab-speech .error")).to_contain_text("notes.wav is not readable audio (")


def test_hopfield_recalls_a_corrupted_stored_image(page: Any, page_served: Served) -> None:
    runs = needs(page_served, "hopfield")
    page.click("button[data-tab=hopfield]")
    page.wait_for_selector("#hopfield-patterns button[data-pattern='1']")
    page.locator("#hopfield-corrupt").fill("0.2")
    sync_api.expect(page.locator("#hopfield-corrupt-value")).to_have_text("20%")
    page.click("#hopfield-patterns button[data-pattern='1']")  # picking an image recalls it
    outcomes = page.locator("#hopfield-results [data-testid=outcome]")
    sync_api.expect(outcomes).to_have_count(len(runs))
    for k in range(len(runs)):
        recall = page.locator("#hopfield-results article.recall").nth(k)
        assert outcomes.nth(k).inner_text().startswith("recalled stored image 1 exactly")
        frames = recall.locator(".film img")
        assert frames.count() >= 4  # stored, cue, at least one step, recalled
        assert frames.last.get_attribute("src") == frames.first.get_attribute("src")  # recalled = stored, pixel for pixel
        assert frames.nth(1).get_attribute("src") != frames.first.get_attribute("src")  # the cue was corrupted
        assert recall.locator("svg.energy circle").count() == frames.count() - 2  # an energy per state from the cue on
    shoot(page, "hopfield")


def test_lab_shows_the_index_and_a_page_with_its_verdict_and_figure(page: Any) -> None:
    page.click("button[data-tab=lab]")
    sync_api.expect(page.locator("#lab-page h1")).to_have_text("archzoo claims lab")
    sync_api.expect(page.locator("#lab-page strong.verdict-refuted").first).to_be_visible()
    page.locator("#lab-page a[data-lab-page='gru-vs-lstm']").first.click()
    sync_api.expect(page.locator("#lab-page h1")).to_contain_text("Is the GRU a cheaper LSTM")
    sync_api.expect(page.locator("#lab-page [data-testid=verdict]")).to_have_text(["Verdict: depends.", "Verdict: refuted."])
    assert drawn(page, "#lab-page img")
    assert page.url.endswith("#lab/gru-vs-lstm")
    shoot(page, "lab")
