"""Bad uploads, in every format the daemon reads: the refusal names the line (or the option) and what to fix,
nothing is stored and no temp file is left. Then the big ones: past the upload limit (refused while the body
is still arriving), a 50 MB line, compression bombs, and file names that try to leave the store."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import socket
import time
import zipfile
from pathlib import Path

import h11
import httpx
import psutil
import pytest

from hone.local_daemon import LocalDaemon, free_port
from tests.badinput.conftest import Case, assert_error, assert_healthy, case_id, check_refused, store_snapshot
from tests.conftest import chat_records


def jsonl(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def chat(user="q", assistant="a", user_role="user"):
    return {"messages": [{"role": user_role, "content": user}, {"role": "assistant", "content": assistant}]}


GOOD = jsonl(*chat_records([("Hi", "Hello"), ("Bye", "Goodbye")]))


def upload(name, content, status, message, param=..., **form):
    return Case("POST", "/v1/files", status=status, message=message, param=param, upload=(name, content), form=form)


def evals_upload(name, content, status, message, param=...):
    return upload(name, content, status, message, param, purpose="evals")


def analyze(name, content, status, message, param=..., **form):
    return Case("POST", "/v1/datasets/analyze", status=status, message=message, param=param,
                upload=(name, content), form={"model": "{model}", **form})


CASES = [
    # JSONL (OpenAI chat and the other record shapes, one per line)
    upload("bad.jsonl", jsonl(chat(), chat()) + b'{"messages": [{"role": "user"\n', 400, "line 3: invalid JSON",
           "file"),
    upload("role.jsonl", jsonl(chat(user_role="wizard")), 400, "line 1: messages[0].role is 'wizard'", "file"),
    upload("type.jsonl", jsonl({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}),
           400, "line 1: messages[0].content must be a string", "file"),
    upload("latin1.jsonl", json.dumps(chat("café")).encode("latin-1").replace(b"\\u00e9", b"\xe9") + b"\n", 400,
           "line 1: not valid UTF-8", "file"),
    upload("noanswer.jsonl", jsonl({"messages": [{"role": "user", "content": "q"}]}), 400, "no assistant turn", "file"),
    upload("list.jsonl", b"[1, 2]\n", 400, "each record must be a JSON object", "file"),
    upload("shape.jsonl", jsonl({"question": "q", "reply": "a"}), 400, "cannot tell the format", "file"),
    upload("blank.jsonl", b"\n\n  \n", 400, "the file is empty", "file"),
    upload("empty.jsonl", b"", 400, "the file is empty", "file"),
    upload("pc.jsonl", jsonl({"prompt": "p", "completion": ""}), 400, "line 1: ", "file"),
    upload("alpaca.jsonl", jsonl({"instruction": 5, "output": "x"}), 400, "'instruction' and 'output' must both be "
                                                                          "strings", "file"),
    upload("sharegpt.jsonl", jsonl({"conversations": [{"from": "alien", "value": "x"}]}), 400,
           "conversations[0].from is 'alien'", "file"),
    upload("forced.jsonl", jsonl({"instruction": "i", "output": "o"}), 400, "but the format is set to chat", "file",
           format="chat"),
    # JSON documents (arrays, exported conversations)
    upload("cut.json", b'[{"instruction": "a", "output": "b"},', 400, "the file ends inside its JSON array", "file"),
    upload("empty.json", b"[]", 400, "its JSON array is empty", "file"),
    upload("strings.json", b'["a", "b"]', 400, "each record must be a JSON object", "file"),
    upload("conversations.json", b'[{"mapping": [], "current_node": "x"}]', 400, "'mapping' must be an object",
           "file"),
    # CSV and TSV
    upload("cols.csv", b"foo,bar\n1,2\n", 400, "cannot tell which columns hold the prompt and the response", "file"),
    upload("cells.csv", b"question,answer\nhi,there,extra\n", 400, "line 2: this row has 3 cells", "file"),
    upload("emptycell.csv", b"question,answer\n,there\n", 400, "line 2: the 'question' cell is empty", "file"),
    upload("wide.csv", b"question,answer\nq," + b"a" * 200_000 + b"\n", 400, "field larger than field limit", "file"),
    upload("map.csv", b"question,answer\nhi,there\n", 400, "columns.prompt is 'nope', but there is no such column",
           "file", columns='{"prompt": "nope", "response": "answer"}'),
    upload("map.csv", b"question,answer\nhi,there\n", 400, "columns has the key 'question'", "file",
           columns='{"question": "question", "response": "answer"}'),
    upload("map.csv", b"question,answer\nhi,there\n", 400, "columns must be a JSON object", "columns",
           columns="{not json"),
    upload("forced.jsonl", jsonl(chat()), 400, "cannot tell which columns", "file", format="csv"),
    upload("cols.tsv", b"foo\tbar\n1\t2\n", 400, "cannot tell which columns", "file"),
    upload("emptycell.tsv", b"question\tanswer\n\tthere\n", 400, "line 2: the 'question' cell is empty", "file"),
    # plain text
    upload("binary.txt", b"hello\x00\x00\x00world" * 10, 400, "looks like a binary file", "file"),
    upload("utf16.txt", "hello world".encode("utf-16"), 400, "the file is saved as UTF-16; save it as UTF-8", "file"),
    upload("latin1.txt", "café au lait\n".encode("latin-1"), 400, "line 1: not valid UTF-8", "file"),
    upload("chunks.txt", b"hello", 400, "chunk_tokens must be between 16 and 32768", "chunk_tokens", chunk_tokens="5"),
    upload("chunks.txt", b"hello", 400, "chunk_tokens: Expected `int`, got `str`", "chunk_tokens",
           chunk_tokens="abc"),
    upload("format.txt", b"hello", 400, "format: Invalid enum value 'bogus'", "format", format="bogus"),
    # Markdown, ChatML, transcripts
    upload("faq.md", b"## What is it?\n\n## And this?\n", 400, "there is no answer under this question heading",
           "file"),
    upload("faq.md", b"Q: what?\n", 400, "there is no answer after this question", "file"),
    upload("dialog.txt", b"<|im_start|>user\nhi\n", 400, "this block has no <|im_end|>", "file"),
    upload("dialog.txt", b"<|im_start|>wizard\nhi<|im_end|>\n", 400, "a block has role 'wizard'", "file"),
    upload("dialog.txt", b"hello <|im_start|>user\nhi<|im_end|>\n", 400, "text outside", "file"),
    upload("talk.txt", b"hello there\nUser: hi\nAssistant: hello\n", 400, "comes before any speaker tag", "file"),
    upload("talk.txt", b"User: hi\n", 400, "no assistant turn", "file", format="transcript"),
    # archives are not data files
    upload("data.jsonl.gz", gzip.compress(GOOD), 400, "the file is a gzip archive; unpack it", "file"),
    upload("data.zip", b"PK\x03\x04" + b"\x00" * 100, 400, "the file is a zip archive", "file"),
    # eval cases (purpose=evals)
    evals_upload("cases.jsonl", jsonl({"nope": 1}), 400, "not an eval case (Object contains unknown field `nope`)",
                 "file"),
    evals_upload("cases.jsonl", b'{"prompt": "x"', 400, "not an eval case", "file"),
    # the form itself
    upload("good.jsonl", GOOD, 400, "purpose must be one of fine-tune, evals; got 'assistants'", "purpose",
           purpose="assistants"),
    Case("POST", "/v1/files", {"purpose": "fine-tune"}, 400, "purpose must be one of", "purpose"),
    Case("POST", "/v1/files", b"garbage", 400, "not a valid multipart form", "file",
         headers={"content-type": "multipart/form-data; boundary=x"}),
    Case("POST", "/v1/files", b"--x\r\n", 400, "not a valid multipart form (multipart boundary missing", "file",
         headers={"content-type": "multipart/form-data"}),
    # the quality report reads an upload it does not keep
    analyze("binary.jsonl", b"\x00\x01" * 100, 400, "looks like a binary file"),
    analyze("good.jsonl", GOOD, 400, "max_seq_len must be an integer", "max_seq_len", max_seq_len="abc"),
    analyze("good.jsonl", GOOD, 404, "is not on this machine", "model", model="acme/nope"),
    Case("POST", "/v1/datasets/analyze", status=400, message="send the data as a multipart form field named 'file'",
         param="file", upload=None, headers={"content-type": "multipart/form-data; boundary=x"},
         body=b"--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--x--\r\n"),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_bad_upload_is_refused_with_the_line_to_fix(api, stored, case):
    check_refused(api, stored, case)


# ------------------------------------------------------------------------------------- big and hostile


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory):
    """A daemon that takes uploads of at most 1 MB."""
    running = LocalDaemon(tmp_path_factory.mktemp("small-limit-home"), free_port(),
                          env={"HONED_MAX_UPLOAD_BYTES": str(2**20)}).start()
    yield running
    running.stop()


def stream_until_answered(port: int, path: str, total: int, chunked: bool) -> tuple[int, dict | None]:
    """POST a multipart upload of `total` bytes (chunked, as a generator would send it, or with its length
    announced), 64 KB at a time, stopping as soon as the server answers or hangs up: (bytes sent, the JSON
    error it answered with, or None when it hung up first)."""
    client = h11.Connection(h11.CLIENT)
    framing = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(total))]
    head = client.send(h11.Request(method="POST", target=path, headers=[
        ("Host", "127.0.0.1"), ("Content-Type", "multipart/form-data; boundary=bnd"), *framing]))
    piece = json.dumps(chat("x" * 200)).encode() * 200 + b"\n"
    sent, received, pending = 0, b"", b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + client.send(h11.Data(data=b'--bnd\r\nContent-Disposition: form-data; name="file"; '
                                                         b'filename="big.jsonl"\r\n\r\n')))
        sock.setblocking(False)
        try:
            while sent < total:
                try:
                    received = sock.recv(65536)
                    break  # an answer, or b"": the server closed the connection
                except BlockingIOError:
                    pass
                if not pending:
                    data = piece[: total - sent]
                    sent += len(data)
                    pending = client.send(h11.Data(data=data))
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before its answer was read: allowed if nothing is stored (the caller checks)
        sock.setblocking(True)
        if not received:
            return sent, None
        client.receive_data(received)
        response, body = None, b""
        while not isinstance(event := client.next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
    assert response is not None and response.status_code == 413, (response, body)
    return sent, json.loads(body)


@pytest.mark.parametrize("chunked", [True, False], ids=["streamed", "length-announced"])
@pytest.mark.parametrize("path", ["/v1/files", "/v1/datasets/analyze"])
def test_an_upload_past_the_limit_is_refused_while_it_is_still_arriving(small_limit, path, chunked):
    api = httpx.Client(base_url=small_limit.base_url, timeout=60)
    before = store_snapshot(small_limit.home)
    memory = psutil.Process(small_limit.process.pid).memory_info().rss
    sent, answer = stream_until_answered(small_limit.port, path, total=2**30, chunked=chunked)
    assert sent < 64 * 2**20, f"the daemon read {sent:,} bytes of a 1 GB upload before refusing it"
    if answer is not None:
        assert set(answer["error"]) == {"message", "type", "param", "code"}
        assert "HONED_MAX_UPLOAD_BYTES" in answer["error"]["message"]
    assert psutil.Process(small_limit.process.pid).memory_info().rss - memory < 100 * 2**20
    assert store_snapshot(small_limit.home) == before
    assert not list((small_limit.home / "files").glob(".upload-*"))
    assert_healthy(api)


def test_a_file_just_over_the_limit_gets_413_naming_the_limit(small_limit):
    api = httpx.Client(base_url=small_limit.base_url, timeout=60)
    before = store_snapshot(small_limit.home)
    line = json.dumps(chat("x" * 1000)).encode() + b"\n"
    response = api.post("/v1/files", data={"purpose": "fine-tune"},
                        files={"file": ("over.jsonl", line * (2**20 // len(line) + 1))})
    assert_error(response, 413, "upload limit of 1,048,576 bytes (HONED_MAX_UPLOAD_BYTES)", param="file")
    response = api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("far.jsonl", line * 3000)})
    assert_error(response, 413, "uploads are limited to 1,048,576 bytes (HONED_MAX_UPLOAD_BYTES)")
    assert store_snapshot(small_limit.home) == before
    assert_healthy(api)


def test_a_50_mb_line_is_read_once_and_refused_by_its_line_number(api, stored):
    before = store_snapshot(stored["home"])
    line = b'{"messages": [{"role": "user", "content": "' + b"a" * (50 * 2**20) + b'"}'  # never closed
    started = time.monotonic()
    response = api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("long.jsonl", line)})
    assert_error(response, 400, "line 1: invalid JSON", param="file")
    assert time.monotonic() - started < 20
    assert store_snapshot(stored["home"]) == before
    assert_healthy(api)


@functools.cache
def bombs() -> dict[str, bytes]:
    """A gzip of 1 GB of zeros (64 concatenated members, about 1 MB) and a zip of 64 MB of zeros (about 64 KB)."""
    member = gzip.compress(b"\0" * (16 * 2**20), 9)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("data.jsonl", b"\0" * (64 * 2**20))
    return {"gzip": member * 64, "zip": archive.getvalue()}


@pytest.mark.parametrize("kind,name", [("gzip", "train.jsonl.gz"), ("gzip", "train.jsonl"), ("zip", "train.zip"),
                                       ("zip", "train.csv")])
def test_a_compression_bomb_is_never_unpacked(api, stored, kind, name):
    before = store_snapshot(stored["home"])
    started = time.monotonic()
    response = api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": (name, bombs()[kind])})
    assert_error(response, 400, f"the file is a {kind} archive; unpack it", param="file")
    assert time.monotonic() - started < 5
    assert store_snapshot(stored["home"]) == before
    assert_healthy(api)


def raw_upload(api: httpx.Client, filename: bytes, content: bytes) -> httpx.Response:
    """A multipart upload with the file name sent byte for byte (httpx would escape NULs and quotes)."""
    body = (b'--bnd\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n--bnd--\r\n")
    return api.post("/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=bnd"})


@pytest.mark.parametrize("sent,kept", [
    (b"../../etc/passwd", "passwd"), (b"/etc/passwd", "passwd"), (b"..\\..\\windows\\train.jsonl", "train.jsonl"),
    (b"a\x00b.jsonl", "ab.jsonl"), (b"..", "upload"), (b"nested/../../../x.jsonl", "x.jsonl"),
    (b"C:\\Users\\me\\train.jsonl", "train.jsonl"), ("café.jsonl".encode(), "café.jsonl"),
])
def test_a_file_name_never_leaves_the_store(api, stored, sent, kept):
    home = stored["home"]
    before = store_snapshot(home)
    response = raw_upload(api, sent, GOOD)
    assert response.status_code == 200, response.text
    stored_file = response.json()
    assert stored_file["filename"] == kept
    row = next(f for f in store_snapshot(home)["files"] if f[0] == stored_file["id"])
    assert (home / row[5]).resolve().parent == (home / "files").resolve()  # the blob is named by its hash
    assert Path(row[5]).name == row[4] == hashlib.sha256(GOOD).hexdigest()
    content = api.get(f"/v1/files/{stored_file['id']}/content")
    assert content.status_code == 200 and content.content == GOOD
    assert content.headers["content-disposition"].startswith('attachment; filename="')
    assert not Path(home.parent / "etc").exists() and not (home / "passwd").exists()
    assert api.delete(f"/v1/files/{stored_file['id']}").status_code == 200
    assert store_snapshot(home) == before
    assert_healthy(api)
