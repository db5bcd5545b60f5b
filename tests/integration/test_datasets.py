"""Data in any common format: uploaded, checked before training, split, browsed, and trained on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hone import Client
from hone.client import HoneError
from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def daemon(shared_daemon):
    """One daemon for the module: these tests add files and jobs of their own and look only at those."""
    return shared_daemon

FORMATS = Path(__file__).parent.parent / "data" / "formats"


def test_each_format_uploads_as_what_it_is(daemon):
    expected = {"chat.jsonl": "chat", "alpaca.json": "alpaca", "sharegpt.jsonl": "sharegpt", "support.csv": "csv",
                "support.tsv": "tsv", "book.txt": "text", "faq.md": "markdown", "dialog.chatml.txt": "chatml",
                "transcript.txt": "transcript"}
    with Client(daemon.base_url) as client:
        for name, detected in expected.items():
            uploaded = client.files.create(FORMATS / name)
            assert (uploaded.format, uploaded.examples > 0) == (detected, True), name
        # a CSV whose headers say nothing needs its columns named; the error lists what is there
        odd = b"colA,colB\nhello,world\n"
        with pytest.raises(HoneError, match="colA"):
            client.files.create(odd, filename="odd.csv")
        mapped = client.files.create(odd, filename="odd.csv", columns={"prompt": "colA", "response": "colB"})
        assert mapped.examples == 1
        page = client.files.preview(mapped.id)
        assert page.data[0].messages == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"}]


def test_preview_pages_and_searches_a_stored_file(daemon, tmp_path):
    records = [{"messages": [{"role": "user", "content": f"question {i}"},
                             {"role": "assistant", "content": "even" if i % 2 == 0 else "odd"}], "label": "l"}
               for i in range(25)]
    with Client(daemon.base_url) as client:
        stored = client.files.create(write_jsonl(tmp_path / "d.jsonl", records))
        first = client.files.preview(stored.id, limit=10)
        assert [e.line for e in first.data] == list(range(1, 11)) and first.has_more
        last = client.files.preview(stored.id, offset=20, limit=10)
        assert [e.line for e in last.data] == [21, 22, 23, 24, 25] and not last.has_more
        odd = client.files.preview(stored.id, q="ODD", limit=100)
        assert [e.line for e in odd.data] == list(range(2, 26, 2)) and all(e.label == "l" for e in odd.data)
    with httpx.Client(base_url=daemon.base_url) as raw:
        assert raw.get(f"/v1/files/{stored.id}/preview", params={"offset": "-1"}).status_code == 400
        assert raw.get("/v1/files/file-nope/preview").status_code == 404


def test_a_file_with_problems_is_checked_without_being_stored(daemon, tiny_model, tmp_path):
    good = {"messages": [{"role": "user", "content": "How do I reset my password?"},
                         {"role": "assistant", "content": "Use the Forgot password link on the sign-in page."}]}
    lines = [json.dumps(good), json.dumps(good),  # an exact duplicate
             '{"messages": [{"role": "user", "content": "broken"',  # line 3: not JSON
             json.dumps({"messages": [{"role": "user", "content": "Mail me at jane.doe@example.com"},
                                      {"role": "assistant", "content": "Done."}]}),
             json.dumps({"messages": [{"role": "user", "content": "no answer"}]})]  # line 5: nothing to learn
    path = tmp_path / "messy.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Client(daemon.base_url) as client:
        stored_before = client.files.list().data
        report = client.datasets.analyze(path, model=str(tiny_model), max_seq_len=64)
        assert client.files.list().data == stored_before  # looked at, not kept
    found = {f.code: f for f in report.findings}
    assert found["exact_duplicates"].lines[:2] == [1, 2] or 2 in found["exact_duplicates"].lines
    assert any(3 in f.lines for f in report.findings if f.severity == "error")
    assert any(5 in f.lines for f in report.findings if f.severity == "error")
    pii = [f for f in report.findings if f.code.startswith("pii")]
    assert pii and pii[0].lines == [4] and "jane.doe@example.com" not in pii[0].message
    assert report.tokens is not None and report.tokens.max_seq_len == 64
    assert any("only" in advice and "examples" in advice for advice in report.recommendations)

    # the CLI says the same, one line per finding, and fails on errors
    result = subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, "data", "check", str(path),
                             "--model", str(tiny_model), "--max-seq-len", "64"],
                            capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""})
    assert result.returncode == 1, result.stderr
    assert "duplicate" in result.stdout.lower() and "Traceback" not in result.stderr


def test_a_stored_file_and_its_validation_file_are_checked_for_leakage(daemon, tiny_model, tmp_path):
    pairs = [(f"What is item {i}?", f"Item {i} is a thing number {i} in the catalogue.") for i in range(30)]
    train = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", train))
        validation = client.files.create(write_jsonl(tmp_path / "v.jsonl", train[:3] + train[:0]))
        report = client.datasets.analyze(training.id, validation_file=validation.id, model=str(tiny_model))
    assert report.examples == 30 and report.validation_examples == 3
    leakage = next(f for f in report.findings if "leak" in f.code)
    assert leakage.count == 3 and leakage.lines == [1, 2, 3]
    with httpx.Client(base_url=daemon.base_url) as raw:
        missing = raw.post("/v1/datasets/analyze", json={"file": "file-nope", "model": str(tiny_model)})
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "file"
        short = raw.post("/v1/datasets/analyze", json={"file": training.id, "max_seq_len": 1})
        assert short.status_code == 400 and "max_seq_len" in short.json()["error"]["message"]


def test_a_labelled_file_splits_by_label_into_stored_files(daemon, tmp_path):
    records = [{"messages": [{"role": "user", "content": f"ticket {i} about {label}"},
                             {"role": "assistant", "content": label}], "label": label}
               for label in ("billing", "shipping") for i in range(20)]
    with Client(daemon.base_url) as client:
        stored = client.files.create(write_jsonl(tmp_path / "l.jsonl", records))
        split = client.datasets.split(stored.id, validation=0.2, test=0.1, seed=7, augment=1.0)
        again = client.datasets.split(stored.id, validation=0.2, test=0.1, seed=7)
        assert split.strata == "label"
        assert (split.validation.examples, split.test.examples) == (8, 4)
        assert split.train.examples == 28 + split.synthetic and split.synthetic == 28
        validation = client.files.preview(split.validation.id, limit=100).data
        assert sorted(e.label for e in validation) == ["billing"] * 4 + ["shipping"] * 4
        assert client.files.content(split.validation.id) == client.files.content(again.validation.id)
        with pytest.raises(HoneError, match="validation"):
            client.datasets.split(stored.id, validation=1.5)


def test_a_job_trains_on_a_csv_file_and_on_plain_text(daemon, tiny_model):
    with Client(daemon.base_url) as client:
        for name, packing in (("support.csv", True), ("book.txt", False)):
            stored = client.files.create(FORMATS / name)
            job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=stored.id,
                                                 hyperparameters={"n_epochs": 1, "batch_size": 2},
                                                 honed={"max_seq_len": 256 if packing else 64, "packing": packing})
            job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
            assert job.status == "succeeded", (name, job.error)
            assert job.trained_tokens > 0
            packed = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data
                      if e.message.startswith("Packed")]
            assert bool(packed) is packing
            if packing:  # 3 short support answers fit in fewer 256-token rows
                assert packed[0].data["rows"] < packed[0].data["examples"] == stored.examples
