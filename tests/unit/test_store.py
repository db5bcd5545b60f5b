import sqlite3

import pytest

from honed.errors import IllegalTransition, NotFound
from honed.jobs.store import LEGAL_TRANSITIONS, Store

SPEC = {"model": "m", "training_file": "file-1", "validation_file": None}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "honed.db")


def test_a_job_walks_the_happy_path_and_each_step_is_an_event(store):
    store.create_job("ftjob-1", SPEC)
    for status in ("queued", "running", "succeeded"):
        store.transition("ftjob-1", status)
    job = store.get_job("ftjob-1")
    assert job.status == "succeeded"
    assert job.started_at is not None and job.finished_at is not None
    statuses = [e.data["status"] for e in store.events("ftjob-1") if e.type == "status"]
    assert statuses == ["validating_files", "queued", "running", "succeeded"]


@pytest.mark.parametrize("start,illegal", [
    ("validating_files", "succeeded"), ("validating_files", "running"), ("queued", "succeeded"),
    ("succeeded", "running"), ("failed", "queued"), ("cancelled", "running"), ("paused", "running"),
])
def test_illegal_transitions_are_refused_and_change_nothing(store, start, illegal):
    store.create_job("ftjob-1", SPEC)
    path = {"validating_files": [], "queued": ["queued"], "succeeded": ["queued", "running", "succeeded"],
            "failed": ["failed"], "cancelled": ["cancelled"], "paused": ["queued", "paused"]}[start]
    for status in path:
        store.transition("ftjob-1", status)
    before = (store.get_job("ftjob-1"), store.events("ftjob-1"))
    with pytest.raises(IllegalTransition, match=f"is {start}; it cannot become {illegal}"):
        store.transition("ftjob-1", illegal)
    assert (store.get_job("ftjob-1"), store.events("ftjob-1")) == before


def test_terminal_statuses_have_no_way_out():
    for status in ("succeeded", "failed", "cancelled"):
        assert LEGAL_TRANSITIONS[status] == frozenset()


def test_claiming_a_job_is_a_compare_and_set(store):
    store.create_job("ftjob-1", SPEC)
    store.transition("ftjob-1", "queued")
    store.transition("ftjob-1", "running", expect={"queued"})
    with pytest.raises(IllegalTransition):  # a duplicated queue message must not run it twice
        store.transition("ftjob-1", "running", expect={"queued"})


def test_jobs_and_events_survive_reopening_the_database(tmp_path):
    first = Store(tmp_path / "honed.db")
    first.create_job("ftjob-1", SPEC)
    first.transition("ftjob-1", "queued")
    first.append_event("ftjob-1", "metrics", "step 1", {"step": 1, "train_loss": 2.5})
    first.close()
    second = Store(tmp_path / "honed.db")
    assert second.get_job("ftjob-1").status == "queued"
    assert [e.type for e in second.events("ftjob-1")] == ["status", "status", "metrics"]
    assert sqlite3.connect(tmp_path / "honed.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_jobs_list_newest_first_with_an_after_cursor(store):
    for index in range(5):
        store.create_job(f"ftjob-{index}", SPEC)
    ids = [j.id for j in store.list_jobs(limit=10)]
    assert ids == sorted(ids, reverse=True)
    page = store.list_jobs(after=ids[1], limit=2)
    assert [j.id for j in page] == ids[2:4]


def test_unknown_job_is_not_found(store):
    with pytest.raises(NotFound, match="No fine-tuning job with id 'ftjob-x'"):
        store.get_job("ftjob-x")


def test_events_are_ordered_by_a_global_sequence(store):
    store.create_job("ftjob-a", SPEC)
    store.create_job("ftjob-b", SPEC)
    store.append_event("ftjob-a", "log", "a")
    seqs = [e.seq for e in store.events()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    newest = store.events_newest_first("ftjob-a", limit=1)
    assert newest[0].message == "a"


def test_eval_results_are_rows_written_with_their_event(store):
    from honed.jobs.store import EvalResultRow

    store.create_job("ftjob-e", {"model": "m"})
    seq = store.add_eval_results("ftjob-e", "Baseline: exact_match=0.5", {"phase": "baseline"}, [
        EvalResultRow(job_id="ftjob-e", phase="baseline", suite="s", metric="exact_match", value=0.5, low=0.2,
                      high=0.8),
        EvalResultRow(job_id="ftjob-e", phase="baseline", suite="s", metric="rouge_l", value=0.3)])
    event = store.events("ftjob-e")[-1]
    assert (event.seq, event.type, event.data) == (seq, "eval", {"phase": "baseline"})
    rows = store.eval_results("ftjob-e")
    assert [(r.metric, r.value, r.low, r.seq) for r in rows] == [("exact_match", 0.5, 0.2, seq), ("rouge_l", 0.3, None, seq)]
    assert store.eval_results("ftjob-other") == []
    # a row that cannot be stored takes its event with it: readers never see one without the other
    with pytest.raises(sqlite3.IntegrityError):
        store.add_eval_results("ftjob-e", "twice", {"phase": "final"}, [
            EvalResultRow(job_id="ftjob-e", phase="final", suite="s", metric="m", value=1.0)] * 2)
    assert store.events("ftjob-e")[-1].seq == seq and len(store.eval_results()) == 2


def test_a_database_from_before_file_formats_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""CREATE TABLE files (id TEXT PRIMARY KEY, filename TEXT NOT NULL, purpose TEXT NOT NULL,
        bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, path TEXT NOT NULL, created_at INTEGER NOT NULL,
        examples INTEGER NOT NULL DEFAULT 0);
        INSERT INTO files VALUES ('file-old', 'a.jsonl', 'fine-tune', 10, 'abc', 'files/abc', 1, 3);""")
    old.commit()
    old.close()
    store = Store(path)
    assert store.get_file("file-old").format is None and store.get_file("file-old").examples == 3
    Store(path)  # opening it again migrates nothing twice


def test_an_alias_keeps_its_history_so_a_rollback_returns_to_the_model_before(store, tmp_path):
    assert store.get_alias("bot") is None
    store.point_alias("bot", "ft:a")
    store.point_alias("bot", "ft:b")
    third = store.point_alias("bot", "ft:c")
    assert (third.target, third.history) == ("ft:c", ["ft:b", "ft:a"])
    assert store.roll_back_alias("bot").target == "ft:b"
    assert store.roll_back_alias("bot").target == "ft:a"
    with pytest.raises(NotFound, match="no earlier model"):
        store.roll_back_alias("bot")
    assert store.get_alias("bot").target == "ft:a"  # a refused rollback changes nothing
    store.point_alias("other", "ft:z")
    reopened = Store(tmp_path / "honed.db")  # another connection to the same file sees the same deployments
    assert [(a.name, a.target) for a in reopened.aliases()] == [("bot", "ft:a"), ("other", "ft:z")]
    store.delete_alias("bot")
    assert store.get_alias("bot") is None
    with pytest.raises(NotFound, match="No alias 'bot'"):
        store.delete_alias("bot")
