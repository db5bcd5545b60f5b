"""What each honed process runs on below Python: OpenMP waiting per role, the worker's allocator."""

from __future__ import annotations

import sys

import pytest

from honed.native_runtime import WORKER_SPIN_COUNT, jemalloc_library, runtime_environment, worker_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the short spin is libgomp's (Linux)")
def test_the_worker_spins_briefly_and_every_other_process_sleeps():
    worker = runtime_environment({"OMP_WAIT_POLICY": "PASSIVE"}, worker=True)  # inherited from `honed serve`
    assert worker["GOMP_SPINCOUNT"] == WORKER_SPIN_COUNT and "OMP_WAIT_POLICY" not in worker
    api = runtime_environment({"GOMP_SPINCOUNT": "1"}, worker=False)
    assert api["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in api


def test_passive_makes_the_worker_sleep_too_and_default_leaves_openmp_alone():
    passive = runtime_environment({"HONED_OMP_WAIT_POLICY": "passive"}, worker=True)
    assert passive["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in passive
    mine = {"HONED_OMP_WAIT_POLICY": "default", "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "7"}
    assert {k: runtime_environment(mine, worker=True)[k] for k in mine} == mine


def test_the_worker_preloads_jemalloc_where_installed_unless_told_not_to():
    library = jemalloc_library()
    worker = runtime_environment({"LD_PRELOAD": "libother.so"}, worker=True)
    if library is None:
        assert worker["LD_PRELOAD"] == "libother.so" and worker_allocator({}) == "system"
    else:
        assert worker["LD_PRELOAD"] == f"libother.so {library}" and worker_allocator({}) == "jemalloc"
        assert runtime_environment(worker, worker=True)["LD_PRELOAD"] == worker["LD_PRELOAD"]  # not twice
    assert "LD_PRELOAD" not in runtime_environment({}, worker=False)  # only the worker
    assert "LD_PRELOAD" not in runtime_environment({"HONED_ALLOCATOR": "system"}, worker=True)
    assert worker_allocator({"HONED_ALLOCATOR": "system"}) == "system"


@pytest.mark.skipif(jemalloc_library() is None, reason="jemalloc is not installed")
def test_under_a_memory_cap_jemalloc_gives_back_address_space_keeping_the_persons_settings():
    assert "MALLOC_CONF" not in runtime_environment({}, worker=True)
    capped = runtime_environment({"HONED_WORKER_MEMORY_MB": "3000", "MALLOC_CONF": "narenas:2"}, worker=True)
    assert capped["MALLOC_CONF"] == "narenas:2,retain:false"
    assert runtime_environment(capped, worker=True)["MALLOC_CONF"] == capped["MALLOC_CONF"]  # a re-exec: not twice
    mine = {"HONED_WORKER_MEMORY_MB": "3000", "MALLOC_CONF": "retain:true"}
    assert runtime_environment(mine, worker=True)["MALLOC_CONF"] == "retain:true"  # the person's choice stands
    system = runtime_environment({"HONED_WORKER_MEMORY_MB": "3000", "HONED_ALLOCATOR": "system"}, worker=True)
    assert "MALLOC_CONF" not in system


@pytest.mark.parametrize("environ, named", [({"HONED_OMP_WAIT_POLICY": "spin"}, "HONED_OMP_WAIT_POLICY='spin'"),
                                            ({"HONED_ALLOCATOR": "tcmalloc"}, "HONED_ALLOCATOR='tcmalloc'")])
def test_an_unknown_choice_is_named(environ, named):
    with pytest.raises(ValueError, match=named):
        runtime_environment(environ, worker=True)
