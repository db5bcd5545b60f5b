"""Who may call the daemon, and what loading a model may run, against real `honed serve` processes.

Web pages of other origins and requests addressed to foreign host names (DNS rebinding) are refused before any
handler runs, so nothing they send is stored; origins the user lists get CORS. Models whose weights are pickles
or that ship their own Python code are refused when named, unless the daemon was started trusting them, and then
they load. (The browser's side of the origin rule, a real page posting a form to the daemon: tests/e2e/test_studio.py.)
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hone.local_daemon import LocalDaemon, free_port
from tests.badinput.conftest import store_snapshot

EVIL = "https://evil.example"
TRAINING_LINE = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


def upload(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/v1/files", headers=headers, data={"purpose": "fine-tune"},
                      files={"file": ("data.jsonl", TRAINING_LINE, "application/jsonl")})


def assert_forbidden(response: httpx.Response, code: str, *fragments: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", code), error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    assert "access-control-allow-origin" not in response.headers


def test_a_page_of_another_origin_is_refused_and_stores_nothing(shared_daemon):
    before = store_snapshot(shared_daemon.home)
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/fine_tuning/jobs"), ("POST", "/v1/chat/completions")):
        response = httpx.request(method, shared_daemon.base_url + path, headers={"Origin": EVIL}, json={})
        assert_forbidden(response, "foreign_origin", EVIL, "HONED_CORS_ORIGINS")
    # a form upload is what a page may send without asking first; "null" is a sandboxed frame or a file:// page
    for origin in (EVIL, "null", f"http://127.0.0.1:{shared_daemon.port + 1}", f"ftp://127.0.0.1:{shared_daemon.port}"):
        assert_forbidden(upload(shared_daemon.base_url, {"Origin": origin}), "foreign_origin", origin)
    preflight = httpx.options(f"{shared_daemon.base_url}/v1/files", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in preflight.headers
    assert store_snapshot(shared_daemon.home) == before


def test_the_studio_origin_and_clients_without_an_origin_are_served(shared_daemon):
    for origin in (f"http://127.0.0.1:{shared_daemon.port}", None):
        response = upload(shared_daemon.base_url, {"Origin": origin} if origin else {})
        assert response.status_code == 200, response.text
    # the studio reached as localhost is its own origin there
    response = httpx.get(f"http://localhost:{shared_daemon.port}/v1/models",
                         headers={"Origin": f"http://localhost:{shared_daemon.port}"})
    assert response.status_code == 200, response.text


def test_a_request_naming_a_foreign_host_is_refused(shared_daemon):
    """DNS rebinding: evil.example resolved to 127.0.0.1 makes the attacker's page same-origin with itself, but
    its requests say Host: evil.example."""
    before = store_snapshot(shared_daemon.home)
    for host in (f"evil.example:{shared_daemon.port}", "evil.example", "127.0.0.1.evil.example", ""):
        response = upload(shared_daemon.base_url, {"Host": host, "Origin": f"http://{host}"})
        assert_forbidden(response, "foreign_host", "127.0.0.1 or localhost")
        assert_forbidden(httpx.get(f"{shared_daemon.base_url}/v1/models", headers={"Host": host}), "foreign_host")
    assert store_snapshot(shared_daemon.home) == before
    for host in (f"127.0.0.1:{shared_daemon.port}", f"localhost:{shared_daemon.port}", "localhost"):
        assert httpx.get(f"{shared_daemon.base_url}/v1/models", headers={"Host": host}).status_code == 200


def test_listed_origins_get_cors_and_others_are_still_refused(tmp_path):
    allowed = "http://localhost:3000"
    daemon = LocalDaemon(tmp_path / "home", free_port(), env={"HONED_CORS_ORIGINS": f"{allowed}, http://notebook.test"},
                         args=["--no-worker"]).start()
    try:
        preflight = httpx.options(f"{daemon.base_url}/v1/files", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        response = upload(daemon.base_url, {"Origin": allowed})
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == allowed
        assert_forbidden(upload(daemon.base_url, {"Origin": EVIL}), "foreign_origin")
        refused = httpx.options(f"{daemon.base_url}/v1/files", headers={
            "Origin": EVIL, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in refused.headers
    finally:
        daemon.stop()


@pytest.mark.parametrize("value", ["localhost:3000", "http://localhost:3000/", "http://localhost:3000/app"])
def test_a_malformed_cors_origin_stops_the_daemon_with_one_line(tmp_path, value):
    result = subprocess.run([sys.executable, "-m", "honed", "serve", "--port", str(free_port()), "--no-worker"],
                            env={**os.environ, "HONED_HOME": str(tmp_path), "HONED_CORS_ORIGINS": value},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"HONED_CORS_ORIGINS: '{value}' is not an origin" in result.stderr, result.stderr


# --- models that would run code when loaded ---

class WritesAFile:
    """A pickle that, unpickled, writes a file: what a malicious pytorch_model.bin does with anything else."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "the pickle ran"))


def model_with_weights_as_pickle(tiny_model: Path, target: Path, payload: object | None = None) -> Path:
    """The tiny model with its weights in pytorch_model.bin: its real weights, or a payload pickle."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(tiny_model, target, ignore=shutil.ignore_patterns("*.safetensors"))
    if payload is None:
        torch.save(load_file(tiny_model / "model.safetensors"), target / "pytorch_model.bin")
    else:
        (target / "pytorch_model.bin").write_bytes(pickle.dumps(payload))
    return target


def model_with_its_own_code(tiny_model: Path, target: Path, marker: Path) -> Path:
    """The tiny model as an architecture transformers does not know, whose code (custom.py) writes `marker`."""
    shutil.copytree(tiny_model, target)
    (target / "custom.py").write_text(
        "from pathlib import Path\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        f"Path({str(marker)!r}).write_text('custom code ran')\n\n"
        "class CustomConfig(LlamaConfig):\n    model_type = 'honed-test-custom'\n\n"
        "class CustomModel(LlamaForCausalLM):\n    config_class = CustomConfig\n")
    config = json.loads((target / "config.json").read_text())
    config.update(model_type="honed-test-custom", architectures=["CustomModel"],
                  auto_map={"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"})
    (target / "config.json").write_text(json.dumps(config))
    return target


def chat(daemon: LocalDaemon, model: Path) -> httpx.Response:
    return httpx.post(f"{daemon.base_url}/v1/chat/completions", timeout=120, json={
        "model": str(model), "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]})


def fine_tune(daemon: LocalDaemon, model: Path, training_file: str) -> httpx.Response:
    return httpx.post(f"{daemon.base_url}/v1/fine_tuning/jobs", json={"model": str(model), "training_file": training_file})


def test_models_that_would_run_code_are_refused_when_named_and_nothing_runs(shared_daemon, tiny_model, tmp_path):
    marker = tmp_path / "ran.txt"
    pickled = model_with_weights_as_pickle(tiny_model, tmp_path / "pickled", WritesAFile(marker))
    custom = model_with_its_own_code(tiny_model, tmp_path / "custom", marker)
    training = upload(shared_daemon.base_url, {}).json()["id"]
    before = store_snapshot(shared_daemon.home)
    for model, flag in ((pickled, "--trust-pickle"), (custom, "--trust-remote-code")):
        for response in (chat(shared_daemon, model), fine_tune(shared_daemon, model, training)):
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("untrusted_model", "model"), error
            assert flag in error["message"] and str(model) in error["message"], error
    assert "pytorch_model.bin" in chat(shared_daemon, pickled).json()["error"]["message"]
    assert "custom.py" in chat(shared_daemon, custom).json()["error"]["message"]
    assert not marker.exists()
    assert store_snapshot(shared_daemon.home) == before


def test_a_daemon_started_trusting_them_loads_them(tmp_path, tiny_model):
    marker = tmp_path / "ran.txt"
    pickled = model_with_weights_as_pickle(tiny_model, tmp_path / "pickled")
    custom = model_with_its_own_code(tiny_model, tmp_path / "custom", marker)
    daemon = LocalDaemon(tmp_path / "home", free_port(), args=["--no-worker", "--trust-pickle", "--trust-remote-code"],
                         env={"HF_MODULES_CACHE": str(tmp_path / "hf-modules")}).start()
    try:
        for model in (pickled, custom):
            response = chat(daemon, model)
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["finish_reason"] in ("stop", "length")
        assert marker.read_text() == "custom code ran"
    finally:
        daemon.stop()


def test_trust_flags_do_not_let_pickle_weights_beside_safetensors_matter(shared_daemon, tiny_model, tmp_path):
    """A directory with safetensors loads them and never reads the pickle beside them (transformers prefers
    safetensors), so it needs no trust."""
    marker = tmp_path / "ran.txt"
    both = shutil.copytree(tiny_model, tmp_path / "both")
    (both / "pytorch_model.bin").write_bytes(pickle.dumps(WritesAFile(marker)))
    response = chat(shared_daemon, both)
    assert response.status_code == 200, response.text
    assert not marker.exists()
