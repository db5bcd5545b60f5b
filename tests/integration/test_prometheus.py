"""grafana/: the alert rules, the scrape config and the dashboard, checked by promtool and run by a real
Prometheus scraping a real honed while it fine-tunes, evaluates and serves."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hone import Client
from hone.local_daemon import free_port
from tests.conftest import ROOT, SECRET_QA, chat_records, write_jsonl
from tests.integration.test_fine_tune_flow import ask
from tests.integration.test_job_evaluation import SUITE

GRAFANA = ROOT / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "honed.json").read_text())
RULES = [rule for group in yaml.safe_load((GRAFANA / "alerts.yml").read_text())["groups"] for rule in group["rules"]]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"row", "stat", "bargauge", "gauge", "timeseries", "table", "barchart", "heatmap", "text"}
GUARD_PROMPTS = ["Describe a river.", "Name a colour."]
TWO_CASES = {**SUITE, "cases": SUITE["cases"][:2]}  # enough for every eval series, half the generation time

# The scenario below raises these on purpose: a job that fails, a guard suite the tuning breaks, and a
# second scrape target where nothing listens. A healthy run must not raise QUIET ones; HonedTrainingDiverging
# depends on where the loss curve is when we look, so either outcome is fine.
FIRING = {"HonedJobFailed", "HonedRegressionDetected", "HonedDaemonDown"}
QUIET = {"HonedTrainingLossNaN", "HonedQueueStuck"}
EITHER = {"HonedTrainingDiverging"}
# Panels allowed to show nothing after the scenario, and why. Every other panel must return data.
MAY_BE_EMPTY: dict[str, str] = {}


def panels() -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    return [p for top in DASHBOARD["panels"] for p in [top, *top.get("panels", [])]]


def grafana_to_promql(expr: str, job_id: str) -> str:
    """The expression Grafana would send for one selected job."""
    for variable, value in [("$__rate_interval", "1m"), ("$__interval", "15s"), ("${job}", job_id), ("$job", job_id)]:
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def wait_until(check: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return value


def test_promtool_accepts_the_rules_and_the_scrape_config(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus); .ci/run installs it")
    rules = subprocess.run([promtool, "check", "rules", str(GRAFANA / "alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"{len(RULES)} rules found" in rules.stdout
    for name in ("prometheus.yml", "alerts.yml"):  # rule_files is relative to the config's directory
        shutil.copy(GRAFANA / name, tmp_path / name)
    config = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_alerts_say_how_bad_and_what_happened():
    assert {r["alert"] for r in RULES} == FIRING | QUIET | EITHER  # a new alert needs a decision above
    for rule in RULES:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        if "honed_train" in rule["expr"] or "honed_eval" in rule["expr"]:  # per-job series: name the job
            assert "$labels.job" in rule["annotations"]["summary"], rule["alert"]


def test_the_dashboard_is_what_grafana_provisioning_needs():
    assert DASHBOARD["uid"] == "honed-overview" and DASHBOARD["title"] == "honed"
    assert DASHBOARD["schemaVersion"] >= 36
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    job = variables["job"]
    assert job["type"] == "query" and job["datasource"] == DATASOURCE and job["multi"] and job["includeAll"]
    assert job["query"]["query"] == job["definition"] == "label_values(honed_train_step, job)"

    every = panels()
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = {p["title"] for p in every}
    assert {"Jobs overview", "Training per job", "Evaluation", "Serving", "Memory"} <= titles
    assert set(MAY_BE_EMPTY) <= titles
    covered: dict[tuple[int, int], str] = {}
    for panel in every:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        xs, ys = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        for cell in ((x, y) for x in xs for y in ys):
            assert cell not in covered, f"{panel['title']} overlaps {covered[cell]}"
            covered[cell] = panel["title"]
        assert panel["type"] in PANEL_TYPES, panel["title"]
        if panel["type"] == "row":
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DATASOURCE and t["expr"] for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
        if panel["type"] in {"timeseries", "stat", "gauge", "bargauge"}:
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"


@pytest.fixture
def prometheus(daemon, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus (Debian package) scraping the test daemon every second, with grafana/alerts.yml."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed (apt-get install prometheus); .ci/run installs it")
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(GRAFANA / name) for name in config["rule_files"]]
    (honed,) = [job for job in config["scrape_configs"] if job["job_name"] == "honed"]
    honed["scrape_interval"] = "1s"
    # the daemon, and a port where nothing listens: what HonedDaemonDown sees when honed is gone
    honed["static_configs"] = [{"targets": [f"127.0.0.1:{daemon.port}", f"127.0.0.1:{free_port()}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, "Prometheus to start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(prometheus: str, expr: str) -> list[dict]:
    """An instant query's result vector; fails with Prometheus's error when the expression does not parse."""
    body = httpx.post(f"{prometheus}/api/v1/query", data={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return body["data"]["result"]


def test_every_panel_and_alert_query_runs_on_what_honed_exports(daemon, prometheus, tiny_model, tmp_path):
    live = f'instance="127.0.0.1:{daemon.port}"'
    # a first scrape sees no failed job yet, so the failure below is an increase HonedJobFailed can see
    wait_until(lambda: query(prometheus, f"honed_jobs_finished_total{{{live}}}"), "a first scrape")
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA, repeat=2)))
        validation = client.files.create(write_jsonl(tmp_path / "v.jsonl", chat_records(SECRET_QA[:2])))
        # fails in the worker at once: one token per example leaves no assistant token to train on
        doomed = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                                honed={"max_seq_len": 1})
        # The base model's greedy answers are a guard suite it passes by construction and the tuned model,
        # which now talks about its secret word, fails: a regression. They are also the serving panels' traffic.
        answers = [ask(client, str(tiny_model), prompt) for prompt in GUARD_PROMPTS]
        guard = {"name": "general", "metrics": ["exact_match"], "max_tokens": 16,  # as many as ask()
                 "cases": [{"prompt": p, "reference": a} for p, a in zip(GUARD_PROMPTS, answers)]}
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, validation_file=validation.id,
            hyperparameters={"n_epochs": 8, "batch_size": 4},  # 8 examples: 16 steps, a metrics event each
            honed={"lora_rank": 32, "learning_rate": 1e-2, "lora_dropout": 0.0, "eval": TWO_CASES,
                   "eval_live_cases": 2, "guards": [guard]})
        assert client.fine_tuning.jobs.wait(doomed.id, poll=0.5, timeout=300).status == "failed"
        finished = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert finished.status == "succeeded", finished.error

    this_job = f'job="{job.id}"'
    wait_until(lambda: query(prometheus, f'honed_eval_score{{{this_job}, phase="final"}}'), "the final scores")
    wait_until(lambda: query(prometheus, f"honed_eval_regression{{{this_job}}}"), "the regression")
    listed = httpx.get(f"{prometheus}/api/v1/label/job/values", params={"match[]": "honed_train_step"}).json()
    assert job.id in listed["data"]  # what the Job variable offers: honor_labels kept honed's own `job` label
    samples = query(prometheus, f"count_over_time(honed_train_loss{{{this_job}}}[10m])")
    assert samples and float(samples[0]["value"][1]) >= 3, "Prometheus saw the loss only at the end"

    empty = []
    for panel in panels():
        for target in panel.get("targets", []):
            if not query(prometheus, grafana_to_promql(target["expr"], job.id)) and panel["title"] not in MAY_BE_EMPTY:
                empty.append(f"{panel['title']} ({target['refId']}): {target['expr']}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    for rule in RULES:
        result = query(prometheus, rule["expr"])
        if rule["alert"] in FIRING:
            assert result, f"{rule['alert']} should have data: {rule['expr']}"
        elif rule["alert"] in QUIET:
            assert not result, f"{rule['alert']} fired on a healthy run: {result}"

    # Prometheus itself loaded grafana/alerts.yml, evaluates every rule, and fires what has no `for`
    def loaded_rules() -> dict[str, str]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return {r["name"]: r["health"] for g in groups for r in g["rules"]}

    wait_until(lambda: set(loaded_rules().values()) == {"ok"}, "every rule to be evaluated")
    assert set(loaded_rules()) == {r["alert"] for r in RULES}

    def alert_states() -> dict[str, str]:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return {a["labels"]["alertname"]: a["state"] for a in alerts}

    states = wait_until(lambda: (s := alert_states()).get("HonedRegressionDetected") == "firing" and s, "the alerts")
    assert states["HonedJobFailed"] == "firing" and states["HonedDaemonDown"] in {"pending", "firing"}
    assert not QUIET & set(states)
