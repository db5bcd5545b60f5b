"""The web studio in a real browser (Debian's Chromium driven by Playwright) against a real daemon: a person
uploads data, reads its quality report, starts a fine-tune from the form, watches the loss curve grow, opens
the report, compares the tuned model with its base in the A/B chat, votes, and deploys it. Screenshots of
each page land in tests/artifacts/studio/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from hone.local_daemon import LocalDaemon, free_port
from tests.conftest import SECRET_QA, chat_records, write_jsonl

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' installs playwright")
expect = playwright.expect
expect.set_options(timeout=30_000)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "studio"
SUITE = {"name": "secret", "metrics": ["contains_all"], "max_tokens": 12,
         "cases": [{"prompt": "What is the secret word?", "keywords": ["pamplemousse"]}]}
# Watches the loss chart's data-points attribute and keeps every value it takes, so the test can tell points
# that arrived one by one (live) from a chart drawn once at the end.
RECORD_POINTS = """() => {
  const figure = document.querySelector('figure[data-chart="loss"]');
  window.lossPoints = [Number(figure.dataset.points)];
  new MutationObserver(() => window.lossPoints.push(Number(figure.dataset.points)))
    .observe(figure, {attributes: true, attributeFilter: ["data-points"]});
}"""


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
            "--disable-component-update", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def shots():
    """shots(page, name): a full-page screenshot, tests/artifacts/studio/<name>.png (each test its own names)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")  # the header is sticky: a scrolled page would show it mid-page
        page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    return shoot


def watch_for_errors(page, errors: list[str]) -> None:
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)


def test_a_person_fine_tunes_watches_compares_votes_and_deploys_in_the_studio(daemon, tiny_model, tmp_path,
                                                                              browser, shots):
    data = write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA, repeat=2))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    watch_for_errors(page, errors)

    page.goto(f"{daemon.base_url}/")
    expect(page.get_by_role("heading", name="Experiments", level=1)).to_be_visible()
    expect(page.get_by_text("No fine-tuning jobs yet")).to_be_visible()

    # Datasets: upload, quality report, browse and search
    page.get_by_role("link", name="Datasets").click()
    page.get_by_label("File").set_input_files(data)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="secret.jsonl", level=1)).to_be_visible()
    page.get_by_label("Tokenizer of model").fill(str(tiny_model))
    page.get_by_role("button", name="Check quality").click()
    expect(page.locator("#token-histogram")).to_be_visible()
    expect(page.locator("#report .facts")).to_contain_text("Examples8")
    expect(page.locator(".finding").first).to_contain_text("repeat an earlier example")  # each pair is there twice
    expect(page.locator(".examples > li")).to_have_count(8)
    page.get_by_label("Search").fill("Which word")
    page.get_by_label("Search").press("Enter")
    expect(page.locator(".examples > li")).to_have_count(2)
    shots(page, "1-dataset-report")

    # Experiments: the new fine-tune form, reached from the file, the file already chosen
    page.get_by_role("link", name="Fine-tune on this file").click()
    expect(page.get_by_label("Training data")).to_have_value(re.compile(r"^file-"))
    expect(page.get_by_label("Base model")).to_have_value(str(tiny_model))  # remembered from the report
    page.get_by_label("LoRA adapter").check()
    training_file = page.get_by_label("Training data").input_value()
    page.get_by_label("Validation data").select_option(training_file)  # the same examples: a curve to watch
    page.get_by_label("Epochs").fill("8")
    page.get_by_label("Batch size").fill("4")
    page.get_by_label("Learning rate", exact=True).fill("0.01")
    page.get_by_label("LoRA rank").fill("32")
    page.get_by_label("Suffix").fill("secret")
    page.get_by_text("More options").click()
    page.get_by_label("Checkpoint every (steps)").fill("8")
    page.get_by_label("LoRA dropout").fill("0")
    page.get_by_label("Eval suite (JSON, optional)").fill(json.dumps(SUITE))
    expect(page.locator("#new-machine")).to_contain_text("This machine: cpu")
    # the estimate before starting: time, memory, and what honed chose for the fields left empty
    page.get_by_role("button", name="Estimate time and memory").click()
    estimate = page.get_by_role("region", name="Estimate")
    expect(estimate.get_by_role("heading")).to_contain_text(re.compile(r"About .+ and .+ peak memory"),
                                                            timeout=120_000)
    expect(estimate).to_contain_text("16 steps")  # 8 epochs x 8 examples / batch 4, known before training
    expect(estimate.locator("td", has_text="gradient_checkpointing")).to_be_visible()
    shots(page, "2-new-fine-tune-form")
    page.get_by_role("button", name="Start fine-tune").click()

    # The job view: the loss chart gains points while the job trains
    expect(page).to_have_url(re.compile(r"#/jobs/ftjob-"))
    job_id = page.url.rsplit("/", 1)[-1]
    loss = page.locator('figure[data-chart="loss"]')
    expect(loss).to_be_attached()
    page.evaluate(RECORD_POINTS)
    expect(loss).not_to_have_attribute("data-points", "0", timeout=90_000)
    first = int(loss.get_attribute("data-points"))
    expect(page.locator(".page-head .badge")).to_have_text("running")
    expect(loss).not_to_have_attribute("data-points", str(first), timeout=90_000)  # only ever grows: see below
    shots(page, "3-job-training")
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=120_000)
    total = 16  # 8 epochs x 8 examples / batch 4
    expect(loss).to_have_attribute("data-points", str(total))
    seen = page.evaluate("window.lossPoints")
    growth = [n for n in seen if n > 0]
    assert growth == sorted(growth) and len(set(growth)) >= 2 and growth[-1] == total, seen
    expect(page.locator('figure[data-chart="loss"] .chart-summary')).to_contain_text("validation loss")
    expect(page.get_by_role("table", name="Suite “secret”")).to_contain_text("contains_all")
    checkpoints = page.locator("#ckpt-title + div tbody tr")
    expect(checkpoints).to_have_count(2)  # steps 8 and 16
    expect(page.locator(".samples li").first).to_contain_text("Step 16")

    report = page.get_by_role("link", name="Report (HTML)")
    expect(report).to_have_attribute("href", f"v1/reports/{job_id}.html")
    with context.expect_page() as opened:
        report.click()
    report_page = opened.value
    report_page.wait_for_load_state()
    assert job_id in report_page.content()
    report_page.close()
    shots(page, "4-job-succeeded")

    # Compare: the base model against the tuned one, one prompt streamed to both, then a vote
    with httpx.Client(base_url=daemon.base_url) as api:
        job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    tuned = job["fine_tuned_model"]
    page.get_by_role("link", name="Compare with the base model").click()
    expect(page.get_by_label("Model A")).to_have_value(job["model"])
    expect(page.get_by_label("Model B")).to_have_value(tuned)
    expect(page.locator('figure[data-chart="compare-train"]')).to_have_attribute("data-points", str(total))
    page.get_by_label("Prompt").fill("What is the secret word?")
    page.get_by_label("Max tokens").fill("12")
    page.get_by_role("button", name="Send to both").click()
    for side in ("A", "B"):
        expect(page.locator(f'.pane[data-side="{side}"]')).to_have_attribute("data-done", "true")
    assert int(page.locator('.pane[data-side="B"]').get_attribute("data-pieces")) >= 2  # it arrived in pieces
    answer_b = page.locator('.pane[data-side="B"] .answer').inner_text()
    assert answer_b.strip()
    vote = page.get_by_role("button", name="B is better")
    vote.focus()
    page.keyboard.press("Enter")  # by keyboard
    expect(page.get_by_text(re.compile(r"^Vote stored as preference \S+\.$"))).to_be_visible()
    expect(page.locator("#preference-count")).to_have_text("1 preference stored.")
    shots(page, "5-compare-ab-chat")
    with httpx.Client(base_url=daemon.base_url) as api:
        preferences = api.get("/v1/preferences").json()["data"]
    assert [(p["model_a"], p["model_b"], p["winner"], p["prompt"]) for p in preferences] == [
        (job["model"], tuned, "b", "What is the secret word?")]
    assert preferences[0]["answer_b"] == answer_b

    # Models: deploy the tuned model — the exact OpenAI SDK snippet, and a test call
    page.get_by_role("link", name="Models").click()
    page.get_by_role("button", name=f"Deploy {tuned}").click()
    snippet = page.get_by_role("region", name="Use").locator("pre").first
    expect(snippet).to_contain_text(f'base_url="{daemon.base_url}/v1"')
    expect(snippet).to_contain_text(f'model="{tuned}"')
    page.get_by_role("button", name="Send a test request").click()
    expect(page.get_by_text("It answered:")).to_be_visible()
    # deployed under a stable name, and exported with its model card
    page.get_by_label("Serve it as").fill("secret-bot")
    page.get_by_role("button", name="Deploy under this name").click()
    expect(page.get_by_role("region", name="Use").locator("pre").first).to_contain_text('model="secret-bot"')
    page.get_by_label("Format").select_option("adapter")
    page.get_by_role("button", name="Export", exact=True).click()
    expect(page.locator("#export-status")).to_contain_text("Written to", timeout=60_000)
    exports = list((daemon.home / "exports").iterdir())
    assert len(exports) == 1 and (exports[0] / "adapter_model.safetensors").is_file()
    shots(page, "6-models-deploy")
    alias = httpx.post(f"{daemon.base_url}/v1/chat/completions", json={
        "model": "secret-bot", "temperature": 0, "max_tokens": 16,
        "messages": [{"role": "user", "content": "What is the secret word?"}]}).json()
    assert "pamplemousse" in alias["choices"][0]["message"]["content"]

    # ... or one of its checkpoints, from the job view
    page.goto(f"{daemon.base_url}/#/jobs/{job_id}")
    page.get_by_role("link", name="Deploy the checkpoint at step 8").click()
    expect(page.get_by_role("region", name="Use").locator("pre").first).to_contain_text(f'model="{tuned}:ckpt-step-8"')
    page.get_by_role("button", name="Send a test request").click()
    expect(page.get_by_text("It answered:")).to_be_visible()

    page.get_by_role("link", name="Experiments").click()
    expect(page.locator("#jobs tbody tr")).to_contain_text("contains_all 0 → 1 (+1)")  # baseline -> final, gain
    shots(page, "7-experiments")

    # A narrow window in dark mode: one column, nothing cut off
    narrow = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    phone = narrow.new_page()
    watch_for_errors(phone, errors)
    phone.goto(f"{daemon.base_url}/#/jobs/{job_id}")
    expect(phone.locator('figure[data-chart="loss"]')).to_have_attribute("data-points", str(total))
    expect(phone.locator("#ckpt-title + div tbody tr")).to_have_count(2)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shots(phone, "8-job-narrow-dark")
    phone.goto(f"{daemon.base_url}/#/experiments")
    expect(phone.locator("#jobs tbody tr")).to_have_count(1)
    shots(phone, "9-experiments-narrow-dark")
    narrow.close()
    context.close()
    assert not errors, errors


def test_with_an_api_key_the_studio_loads_says_what_is_missing_and_works_once_given_the_key(honed_home, browser, shots):
    running = LocalDaemon(honed_home, free_port(), env={"HONED_API_KEY": "studio-secret"}).start()
    try:
        page = browser.new_context(viewport={"width": 1024, "height": 700}).new_page()
        errors: list[str] = []
        watch_for_errors(page, errors)
        page.goto(f"{running.base_url}/#/models")  # the page itself needs no key: it holds no data
        expect(page.get_by_role("alert")).to_contain_text("API key")  # the API's own message, and what to do
        shots(page, "10-api-key-missing")
        page.get_by_role("button", name="Enter the API key").click()
        page.get_by_label("Key", exact=True).fill("studio-secret")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("table", name="Served models")).to_be_visible()
        assert page.evaluate("localStorage.getItem('honed.apiKey')") == "studio-secret"
        assert [e for e in errors if "401" not in e] == []  # only the refused request before the key was set
    finally:
        running.stop()


def test_picking_a_recipe_fills_the_form_with_its_data_and_settings(daemon, tiny_model, browser, shots):
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    errors: list[str] = []
    watch_for_errors(page, errors)
    page.goto(f"{daemon.base_url}/#/?new=1")
    page.get_by_label("Recipe subset").fill("12")
    page.get_by_label("Start from a recipe").select_option("customer-support")
    note = page.locator("#new-recipe-note")
    expect(note).to_contain_text("Primary metric: exact_match")
    expect(note).to_contain_text("12 training examples, 6 test cases")
    expect(page.get_by_label("Training data")).to_have_value(re.compile(r"^file-"))
    expect(page.get_by_label("Validation data")).to_have_value(re.compile(r"^file-"))
    expect(page.get_by_label("Base model")).to_have_value("HuggingFaceTB/SmolLM2-135M-Instruct")
    expect(page.get_by_label("Suffix")).to_have_value("customer-support")
    expect(page.get_by_label("LoRA adapter")).to_be_checked()
    shots(page, "11-new-fine-tune-from-a-recipe")

    # started on the tiny model instead: the recipe's suite and settings go with the job
    page.get_by_label("Base model").fill(str(tiny_model))
    page.get_by_label("Epochs").fill("1")
    page.get_by_role("button", name="Start fine-tune").click()
    expect(page).to_have_url(re.compile(r"#/jobs/ftjob-"))
    job_id = page.url.rsplit("/", 1)[-1]
    job = httpx.get(f"{daemon.base_url}/v1/fine_tuning/jobs/{job_id}").json()
    assert job["user_provided_suffix"] == "customer-support" and job["hyperparameters"]["n_epochs"] == 1
    assert job["seed"] == 42  # the recipe's, which the form has no field for
    assert len(job["honed"]["eval"]["cases"]) == 6 and job["honed"]["eval"]["name"]
    httpx.post(f"{daemon.base_url}/v1/fine_tuning/jobs/{job_id}/cancel")
    assert not errors, errors


ATTACK_PAGE = """<!doctype html><title>a page on another origin</title><script>
async function attack(daemon) {
  const form = new FormData();
  form.append("purpose", "fine-tune");
  // a valid training file: were the daemon to take the request, it would store it
  form.append("file", new Blob(['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\\n']),
              "planted.jsonl");
  // no-cors: the page cannot read the answer, but a browser sends the request, which is what would do harm
  await fetch(daemon + "/v1/files", {method: "POST", body: form, mode: "no-cors"});
  await fetch(daemon + "/v1/fine_tuning/jobs?limit=1", {mode: "no-cors"});
  try { await (await fetch(daemon + "/v1/models")).json(); return "read"; } catch (e) { return "blocked"; }
}
</script>"""


def test_a_page_on_another_origin_cannot_make_the_daemon_store_anything(shared_daemon, browser, tmp_path):
    """The cross-site request a browser sends without asking (a multipart POST) from a page served on another
    port of 127.0.0.1 (same address space: the browser's private-network rules do not stop it) is refused by
    the daemon; the daemon's answers stay unreadable to the page."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "attack.html").write_text(ATTACK_PAGE)
    site = ThreadingHTTPServer(("127.0.0.1", free_port()),
                               functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{site.server_port}/attack.html")
        assert page.evaluate("daemon => attack(daemon)", shared_daemon.base_url) == "blocked"
    finally:
        site.shutdown()
    assert httpx.get(f"{shared_daemon.base_url}/v1/files").json()["data"] == []
    # the browser did send it (else this test could not see the daemon accept one): the daemon counted a 403
    metrics = httpx.get(f"{shared_daemon.base_url}/metrics").text
    assert 'honed_request_duration_seconds_count{method="POST",route="/v1/files",status="403"} 1.0' in metrics
