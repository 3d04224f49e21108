"""The study page in a real headless Chromium: practice with feedback, the test without, answers on disk,
resume after a reload, the results view, and no request leaving 127.0.0.1."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from test_turing import answer_all, make_study, other

from colorize.turing import StudyServer, tally_study
from colorize.turing.store import AnswerStore

pytestmark = pytest.mark.browser

VIEW_MS = 150
CSP_WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation',"
             " e => window.__csp.push(e.blockedURI + ' ' + e.violatedDirective));")


def _wait(driver, script: str, timeout: float = 20.0):
    """Wait until the JS expression is truthy (condition-based: no timed assertions)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script("return " + script))


def _view(driver, name: str) -> None:
    _wait(driver, f"document.body.dataset.view === {name!r}")


def _ready_trial(driver) -> str:
    """Wait for a pair to be on screen and answerable; return its trial id."""
    _wait(driver, "document.body.dataset.view === 'trial' && document.body.dataset.ready === '1'")
    return driver.execute_script("return document.body.dataset.trial")


def _press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def _resource_urls(driver) -> list[str]:
    return driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))")


def _text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById({element_id!r}).textContent")


def test_take_practice_and_test_reload_resumes_answers_saved_all_local(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from colorize.scraper.browser import chromium

    study = make_study(tmp_path, pairs=4, practice=2)
    trials = study.trials_by_id()
    study_dir = tmp_path / "study"
    seen_urls: list[str] = []
    chosen: dict[str, str] = {}

    def choose(driver, key: str) -> str:
        tid = _ready_trial(driver)
        chosen[tid] = "left" if key in ("f", Keys.ARROW_LEFT) else "right"
        _press(driver, key)
        return tid

    with StudyServer(study_dir, port=0, view_ms=VIEW_MS) as server, chromium() as driver:
        # Record anything the Content Security Policy blocks (an external font, script, image...).
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
        driver.get(server.url)
        _view(driver, "welcome")
        assert "0.15 s" in _text(driver, "welcome-timing")
        driver.find_element(By.ID, "label").send_keys("tester", Keys.ENTER)

        # Practice: feedback names the true side; progress says "Practice i of 2".
        for i, key in enumerate(["f", "j"], start=1):
            tid = _ready_trial(driver)
            assert trials[tid].phase == "practice"
            assert _text(driver, "progress-text") == f"Practice {i} of 2"
            sizes = driver.execute_script(
                "return ['img-left','img-right'].map(id => [document.getElementById(id).naturalWidth,"
                " document.getElementById(id).naturalHeight])")
            assert sizes[0] == sizes[1] == [trials[tid].width, trials[tid].height]
            if i == 1:  # the timed view: both photos are covered once view_ms has passed
                _wait(driver, "document.getElementById('fig-left').classList.contains('covered')"
                              " && document.getElementById('fig-right').classList.contains('covered')")
            choose(driver, key)
            _wait(driver, "!document.getElementById('feedback').classList.contains('hidden')")
            real = trials[tid].real_side
            assert f"The real photo was on the {real}." in _text(driver, "feedback-text")
            assert _text(driver, f"cap-{real}") == "real" and _text(driver, f"cap-{other(real)}") == "colorized"
            expected = "correct" if chosen[tid] == real else "wrong"
            assert driver.execute_script("return document.body.dataset.feedback") == expected
            if i == 1:
                _press(driver, Keys.ENTER)
            else:
                driver.find_element(By.ID, "next").click()

        # The test: an announcement, then pairs without feedback; keys and buttons both answer.
        _view(driver, "test-intro")
        _press(driver, Keys.ENTER)
        choose(driver, Keys.ARROW_LEFT)
        tid = _ready_trial(driver)
        assert _text(driver, "progress-text") == "Pair 2 of 4"
        assert driver.execute_script("return document.getElementById('feedback').classList.contains('hidden')")
        chosen[tid] = "right"
        driver.find_element(By.ID, "choose-right").click()
        _wait(driver, "document.body.dataset.position === '4'")
        seen_urls += _resource_urls(driver)

        # Reload mid-test: the page resumes at pair 3 of 4 for the same participant.
        driver.refresh()
        _view(driver, "resume")
        assert "pair 3 of 4" in _text(driver, "resume-text")
        pid = urlsplit(driver.current_url).query.removeprefix("p=")
        _press(driver, Keys.ENTER)
        _ready_trial(driver)
        assert _text(driver, "progress-text") == "Pair 3 of 4"
        choose(driver, "j")
        choose(driver, "f")
        _view(driver, "done")
        seen_urls += _resource_urls(driver)
        violations = driver.execute_script("return window.__csp")
        driver.get(server.url)  # the bare address: the participant is remembered in localStorage
        _view(driver, "done")

        # A second participant, answered through the API, and the results view of both.
        store = AnswerStore(study_dir, study, VIEW_MS)
        answer_all(store, store.new_participant(), lambda t: other(t.real_side), rt_ms=100.0)
        driver.get(server.results_url)  # the experimenter's address (the token printed at start)
        _wait(driver, "document.body.dataset.results === '1'")
        overall = _text(driver, "results-overall")
        participants = _text(driver, "results-participants")
        seen_urls += _resource_urls(driver)
        requests = list(server.requests)

    # One well-formed line per answer, in order, with the true side and the choice made.
    lines = (study_dir / "answers" / f"{pid}.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert len(records) == 6 == len(chosen)
    assert [r["position"] for r in records] == list(range(6))
    assert [r["phase"] for r in records] == ["practice"] * 2 + ["test"] * 4
    for r in records:
        assert r["real_side"] == trials[r["trial"]].real_side and r["choice"] == chosen[r["trial"]]
        assert r["correct"] == (r["choice"] == r["real_side"]) and r["rt_ms"] > 0 and r["view_ms"] == VIEW_MS
    assert sorted(r["trial"] for r in records if r["phase"] == "test") == [t.id for t in study.test()]
    assert json.loads((study_dir / "participants" / f"{pid}.json").read_text())["label"] == "tester"

    # The results view shows the tally of both participants.
    tally = tally_study(study_dir)
    fooled = sum(r["choice"] != r["real_side"] for r in records if r["phase"] == "test") + 4
    assert tally["overall"]["fooled"] == fooled and tally["overall"]["n"] == 8
    assert f"({fooled}/8)" in overall and pid in participants and "too_fast" in participants

    # Nothing but 127.0.0.1: nothing blocked by the CSP, every URL the page loaded, every request served.
    assert violations == []
    assert seen_urls and all(urlsplit(u).hostname == "127.0.0.1" for u in seen_urls), seen_urls
    assert {c for _, _, c in requests} == {"127.0.0.1"}
    paths = {urlsplit(p).path for _, p, _ in requests}
    assert {"/", "/static/app.js", "/static/style.css", "/api/study"} <= paths
    assert {urlsplit(server.results_url).path, urlsplit(server.results_url).path.replace("/results/", "/api/results/")} <= paths


def test_page_assets_reference_nothing_external():
    """The page's own files name no other host (what the CSP would block is not even asked for)."""
    from importlib import resources

    for name in ("index.html", "app.js", "style.css"):
        text = resources.files("colorize.turing").joinpath("static", name).read_text()
        for needle in ("http://", "https://", "//cdn", "@import", "url(", "fonts.g"):
            assert needle not in text, (name, needle)
