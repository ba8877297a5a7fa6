"""`vram-eval web` in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium): the page's totals and peaks are the CLI's, a formula opens, a solve runs, a shared URL
reproduces the page, a bad config.json shows the CLI's located error. Screenshots of each state
are kept under $VRAM_EVAL_ARTEFACTS (or pytest's tmp_path).

Skipped, saying why, where selenium, chromium or chromedriver is missing (.ci/run installs them:
apt-get install chromium chromium-driver, pip install '.[web-test]')."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from vram_eval import web
from vram_eval.cli import main

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install 'vram-eval[web-test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CHROMIUM = os.environ.get("VRAM_EVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = os.environ.get("VRAM_EVAL_CHROMEDRIVER") or shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no headless browser: the browser tests need Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1800")


def cli(*args) -> str:
    """What the CLI prints for these arguments (run in this process)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def base():
    srv = web.make_server("127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="vram-eval-chromium-")
    options.add_argument("--user-data-dir=" + profile)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    where = os.environ.get("VRAM_EVAL_ARTEFACTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("web-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _data(driver, key: str) -> str:
    return driver.execute_script(f"return document.body.dataset.{key} || ''")


def settle(driver, calls_before: int = -1, timeout: float = 30) -> None:
    """Wait until the page is ready, no request is in flight, and (given) a new one has ended."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _data(driver, "ready") == "1" and _data(driver, "pending") == "0" and int(_data(driver, "calls") or 0) > calls_before:
            return
        time.sleep(0.02)
    raise AssertionError("the page did not settle: " + driver.find_element(By.ID, "error-text").text)


def calls(driver) -> int:
    return int(_data(driver, "calls") or 0)


def no_script_errors(driver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert errors == []


def page_numbers(driver, report: dict) -> dict:
    """The bytes the page shows for each job's sum of parts, peak and headroom at the peak."""
    out = {}
    for job in ("training", "lora", "qlora", "inference"):
        for row in ("total", "peak"):
            cell = driver.find_element(By.CSS_SELECTOR, f"#{row}-{job} a")
            out[f"{row}_{job}"] = int(cell.get_attribute("data-bytes"))
        out[f"peak_headroom_{job}"] = int(driver.find_element(By.ID, f"fits-{job}").get_attribute("data-bytes"))
    return out


def cli_numbers(report: dict) -> dict:
    return {f"{row}_{job}": report["outputs"][f"{row}_{job}"] for job in ("training", "lora", "qlora", "inference")
            for row in ("total", "peak", "peak_headroom")}


def test_llama13b_on_an_h100_shows_the_cli_totals_and_peaks(browser, base, artefacts):
    browser.get(base + "?spec=gpt2")
    settle(browser)
    before = calls(browser)
    Select(browser.find_element(By.ID, "spec")).select_by_value("llama13b")
    settle(browser, before)
    before = calls(browser)
    Select(browser.find_element(By.ID, "gpu")).select_by_value("h100-sxm")
    settle(browser, before)
    report = json.loads(cli("specs/llama13b.toml", "--gpu", "h100", "--format", "json"))
    assert page_numbers(browser, report) == cli_numbers(report)
    # and the figures read as the CLI's table prints them
    table = cli("specs/llama13b.toml", "--gpu", "h100")
    peaks = next(line for line in table.splitlines() if line.strip().startswith("peak over phases")).split("  ")
    shown = [browser.find_element(By.ID, f"peak-{job}").text for job in ("training", "lora", "qlora", "inference")]
    assert shown == [p.strip() for p in peaks if p.strip()][1:5]
    assert "NVIDIA H100" in browser.find_element(By.ID, "subtitle").text
    assert browser.find_element(By.ID, "cli").text == "vram-eval llama13b --gpu h100-sxm"
    assert browser.find_elements(By.CSS_SELECTOR, "#bars-svg rect.segment")
    assert "spec=llama13b" in browser.current_url and "gpu=h100-sxm" in browser.current_url
    browser.save_screenshot(str(artefacts / "1-llama13b-h100.png"))
    no_script_errors(browser)


def test_a_number_opens_its_formula(browser, base, artefacts):
    browser.get(base + "?spec=llama13b&gpu=h100")
    settle(browser)
    before = calls(browser)
    browser.find_element(By.CSS_SELECTOR, "#breakdown a[data-output='weights']").click()
    settle(browser, before)
    text = browser.find_element(By.ID, "explain-text").text
    expected = cli("explain", "weights", "--spec", "llama13b", "--set", "gpu=h100")
    assert text.split() == expected.split()  # the same words (the page wraps long lines)
    assert "as written:" in text and "defined at formulas/training.formula:" in text
    assert "26,031,728,640 bytes" in browser.find_element(By.ID, "explain-value").text
    assert "explain=weights" in browser.current_url
    browser.save_screenshot(str(artefacts / "2-explain-weights.png"))
    no_script_errors(browser)


def test_a_solve_runs(browser, base, artefacts):
    browser.get(base + "?spec=llama13b&gpu=h100&regime=lora")
    settle(browser)
    Select(browser.find_element(By.ID, "solve-for")).select_by_value("s")
    before = calls(browser)
    browser.find_element(By.ID, "solve").click()
    settle(browser, before)
    expected = json.loads(cli("solve", "llama13b", "--for", "s", "--set", "gpu=h100", "--set", "regime=lora",
                              "--format", "json"))
    value = browser.find_element(By.ID, "solve-value")
    assert int(value.get_attribute("data-value")) == expected["value"]
    assert value.text == f"{expected['value']:,}"
    assert "solve=s" in browser.current_url
    browser.save_screenshot(str(artefacts / "3-solve-s.png"))
    no_script_errors(browser)


def test_a_shared_url_reproduces_the_page(browser, base, artefacts):
    query = urlencode([("spec", "llama2-7b"), ("gpu", "l40s"), ("regime", "inference"), ("units", "GB"),
                       ("set", "s=4096"), ("set", "b=4"), ("set", "kv_dtype=fp8"), ("set", "cuda_context=500MiB"),
                       ("explain", "kv_cache"), ("solve", "b"), ("sweep", "s=1024:65536:x2")])
    browser.get(base + "?" + query)
    settle(browser)
    assert browser.find_element(By.ID, "f-s").get_attribute("value") == "4096"
    assert Select(browser.find_element(By.ID, "f-kv_dtype")).first_selected_option.text == "fp8"
    assert browser.find_element(By.ID, "sets").get_attribute("value") == "cuda_context=500MiB"
    args = ["specs/llama2-7b.toml", "--gpu", "l40s", "--set", "s=4096", "--set", "b=4", "--set", "kv_dtype=fp8",
            "--set", "cuda_context=500MiB", "--set", "regime=inference"]
    report = json.loads(cli(*args, "--format", "json"))
    assert page_numbers(browser, report) == cli_numbers(report)
    assert browser.find_element(By.ID, "peak-inference").text.endswith(" GB")
    assert browser.find_element(By.ID, "explain-name").text == "kv_cache"
    solve_args = ["solve", "llama2-7b", "--for", "b", "--set", "gpu=l40s"] + args[3:]
    solved = json.loads(cli(*solve_args, "--format", "json"))
    assert int(browser.find_element(By.ID, "solve-value").get_attribute("data-value")) == solved["value"]
    chart = browser.find_element(By.ID, "sweep-svg")
    assert "Llama-2-7B" in chart.text and "log scale" in chart.text and "memory per GPU (GB)" in chart.text
    crossings = browser.find_elements(By.CSS_SELECTOR, "#sweep-svg circle.crossing")
    s_fit = json.loads(cli("solve", "llama2-7b", "--for", "s", "--set", "gpu=l40s", *args[3:], "--format", "json"))
    assert [int(c.get_attribute("data-value")) for c in crossings] == [s_fit["value"]]
    browser.save_screenshot(str(artefacts / "4-shared-url.png"))
    # the page's own link, opened afresh, is the same page
    link = browser.find_element(By.ID, "share").get_attribute("href")
    shown = page_numbers(browser, report)
    browser.get(link)
    settle(browser)
    assert page_numbers(browser, report) == shown
    no_script_errors(browser)


def test_a_bad_config_json_shows_the_located_error(browser, base, artefacts, tmp_path):
    browser.get(base + "?spec=llama13b")
    settle(browser)
    bad = tmp_path / "config.json"
    bad.write_text('{\n  "model_type": "llama",\n  "num_hidden_layers": "forty"\n}\n')
    before = calls(browser)
    browser.find_element(By.ID, "upload").send_keys(str(bad))
    settle(browser, before)
    box = browser.find_element(By.ID, "error")
    assert box.is_displayed()
    text = browser.find_element(By.ID, "error-text").text
    assert text.startswith("config.json:3:") and "'num_hidden_layers'" in text
    assert '"num_hidden_layers": "forty"' in text and "^" in text
    assert "Traceback" not in text and str(tmp_path) not in text and "vram-eval-web-" not in text
    assert not browser.find_element(By.ID, "report").is_displayed()
    assert "config=" in browser.current_url  # the link carries the uploaded text too
    browser.save_screenshot(str(artefacts / "5-bad-config.png"))
    # back to the built-in spec: the error is gone, and the link no longer carries the file
    before = calls(browser)
    browser.find_element(By.ID, "use-spec").click()
    settle(browser, before)
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "report").is_displayed() and "config=" not in browser.current_url
    no_script_errors(browser)


def test_a_training_config_beside_the_spec_is_the_clis(browser, base, artefacts, capsys):
    """An uploaded axolotl YAML: the page's totals are `--train-config FILE`'s, the link carries it,
    and dropping it restores the spec's own."""
    from vram_eval.cli import main

    from conftest import ROOT

    path = ROOT / "tests" / "data" / "train_configs" / "axolotl" / "examples" / "llama-3" / "qlora.yml"
    browser.get(base + "?spec=llama3-8b&gpu=h100-sxm")
    settle(browser)
    before = calls(browser)
    browser.find_element(By.ID, "train-upload").send_keys(str(path))
    settle(browser, before)
    assert "train=" in browser.current_url and not browser.find_element(By.ID, "error").is_displayed()
    capsys.readouterr()
    assert main([str(ROOT / "specs" / "llama3-8b.toml"), "--gpu", "h100-sxm", "--train-config", str(path),
                 "--format", "json"]) == 0
    cli_total = json.loads(capsys.readouterr().out)["outputs"]["peak_qlora"]
    assert "qlora.yml" in browser.find_element(By.ID, "train-source").text
    assert f"{cli_total / 2**30:.2f} GiB" in browser.find_element(By.ID, "report").text
    browser.save_screenshot(str(artefacts / "6-training-config.png"))
    before = calls(browser)
    browser.find_element(By.ID, "no-train").click()
    settle(browser, before)
    assert "train=" not in browser.current_url
    no_script_errors(browser)


@pytest.mark.parametrize("kind", ["folder", "gguf"])
def test_a_model_folder_or_a_gguf_is_read_from_its_headers(browser, base, artefacts, tmp_path, capsys, kind):
    """The page sends a folder's config.json, index and safetensors headers (or a GGUF's first
    bytes), never the weights: its figures are `vram-eval PATH`'s."""
    from vram_eval.cli import main

    from conftest import write_gguf
    from test_checkpoint import model_folder

    path = (model_folder(tmp_path / "llama-2-7b", "llama-2-7b.json", shards=2) if kind == "folder"
            else write_gguf(tmp_path / "tiny.gguf"))
    browser.get(base + "?gpu=h100-sxm")
    settle(browser)
    before = calls(browser)
    browser.find_element(By.ID, "folder-upload" if kind == "folder" else "gguf-upload").send_keys(str(path))
    settle(browser, before)
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error-text").text
    capsys.readouterr()
    assert main([str(path), "--gpu", "h100-sxm", "--format", "json"]) == 0
    peak = json.loads(capsys.readouterr().out)["outputs"]["peak_inference"]
    assert f"{peak / 2**30:.2f} GiB" in browser.find_element(By.ID, "report").text
    assert path.name in browser.find_element(By.ID, "model-source").text
    browser.save_screenshot(str(artefacts / f"7-{kind}.png"))
    no_script_errors(browser)
