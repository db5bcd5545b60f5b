import io
import json
import tracemalloc
from pathlib import Path

import pytest

from hone.types import DataFormat
from honed.data.example import Example, Message, Problem
from honed.data.formats import count_records, detect_format, json_files, read_examples_strict, read_records
from honed.errors import DataError

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "formats"


def read(name: str, data: bytes | None = None, **options) -> list[Example | Problem]:
    handle = io.BytesIO(data) if data is not None else (FIXTURES / name).open("rb")
    with handle:
        return list(read_records(handle, name, DataFormat(**options)))


def examples(name: str, data: bytes | None = None, **options) -> list[Example]:
    records = read(name, data, **options)
    assert [r for r in records if isinstance(r, Problem)] == []
    return records


def chat(*turns: str, system: str | None = None) -> tuple[Message, ...]:
    roles = ["user", "assistant"] * len(turns)
    head = (Message("system", system),) if system else ()
    return head + tuple(Message(role, text) for role, text in zip(roles, turns))


@pytest.mark.parametrize("name,expected", [
    ("chat.jsonl", "chat"), ("prompt_completion.jsonl", "prompt_completion"), ("alpaca.json", "alpaca"),
    ("alpaca.jsonl", "alpaca"), ("sharegpt.jsonl", "sharegpt"), ("mixed.jsonl", "chat"), ("support.csv", "csv"),
    ("support.tsv", "tsv"), ("book.txt", "text"), ("faq.md", "markdown"), ("dialog.chatml.txt", "chatml"),
    ("transcript.txt", "transcript"), ("chatgpt-export.json", "transcript"),
])
def test_each_fixture_is_detected_as_its_format(name, expected):
    assert detect_format((FIXTURES / name).read_bytes()[:4096], name) == expected


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_every_fixture_reads_cleanly_and_passes_the_strict_check(name):
    with (FIXTURES / name).open("rb") as handle:
        assert count_records(handle, name, DataFormat()) == len(examples(name))


def test_chat_lines_keep_their_label_metadata_and_text_parts():
    records = examples("chat.jsonl")
    assert records[1].messages == chat("Do you ship to Canada?", "Yes, in 5 to 8 business days.")
    assert (records[2].line, records[2].label, records[2].metadata) == (3, "billing", {"source": "tickets-2024"})
    assert records[0].messages[0] == Message("system", "You are Acme's support assistant.")
    assert len(records[3].messages) == 4


def test_prompt_completion_lines_keep_their_line_across_a_blank_line():
    records = examples("prompt_completion.jsonl")
    assert [r.line for r in records] == [1, 2, 4]
    assert records[1].messages == chat("Translate to French: bread", "pain") and records[1].label == "food"


def test_alpaca_array_items_start_on_their_own_lines_and_join_instruction_and_input():
    records = examples("alpaca.json")
    assert [r.line for r in records] == [2, 7, 12]
    assert records[0].messages == chat("Give three tips for staying healthy.",
                                       "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Get enough sleep.")
    assert records[2].messages == chat("Classify the sentiment.\n\nI love this product!", "positive",
                                       system="Answer with one word.")
    assert examples("alpaca.jsonl")[1].messages == chat("Rewrite in the passive voice.\n\nThe cat chased the mouse.",
                                                        "The mouse was chased by the cat.")


def test_sharegpt_speakers_become_roles():
    records = examples("sharegpt.jsonl")
    assert records[1].messages == chat("Name a planet.", "Mars.", "Another?", "Venus.", system="You are terse.")
    assert records[2].messages == chat("Is the sky blue?", "Yes, on a clear day.")


def test_a_sharegpt_turn_from_an_unknown_speaker_is_a_problem_and_reading_goes_on():
    good = json.dumps({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]})
    bad = json.dumps({"conversations": [{"from": "human", "value": "a"}, {"from": "tool", "value": "b"}]})
    records = read("x.jsonl", f"{good}\n{bad}\n{good}\n".encode())
    assert isinstance(records[1], Problem) and records[1].line == 2
    assert "conversations[1].from is 'tool'" in records[1].message
    assert [r.line for r in records if isinstance(r, Example)] == [1, 3]


def test_a_mixed_jsonl_reads_each_line_by_its_own_keys():
    assert [r.messages[-1].content for r in examples("mixed.jsonl")] == ["Pong", "Cold.", "tac", "Hi there!", "Yes."]


def test_a_mixed_jsonl_read_as_chat_reports_the_other_lines():
    records = read("mixed.jsonl", format="chat")
    problems = [r for r in records if isinstance(r, Problem)]
    assert [p.line for p in problems] == [2, 3, 5]
    assert "looks like prompt_completion" in problems[0].message and "format is set to chat" in problems[0].message
    assert [r.line for r in records if isinstance(r, Example)] == [1, 6]


def test_csv_rows_keep_their_physical_line_across_a_quoted_multi_line_cell():
    records = examples("support.csv")
    assert [(r.line, r.label) for r in records] == [(2, "account"), (3, "general"), (6, "billing")]
    assert records[0].messages == chat("How do I reset my password?", 'Click "Forgot password" on the sign-in page.')
    assert records[1].messages[1].content == "We are open:\nMonday to Friday, 9 to 5\nSaturday, 10 to 2"


def test_tsv_columns_are_found_by_their_header_names():
    records = examples("support.tsv")
    assert records[1].messages == chat("I was charged twice", "Sorry about that! We have refunded the second charge.")
    assert (records[1].line, records[1].label) == (3, "billing")


def test_a_csv_whose_columns_cannot_be_told_names_its_headers_and_the_option():
    with pytest.raises(DataError) as caught:
        read("odd.csv", b"ticket,body,resolution\n1,My screen is black,Replug the cable\n")
    assert "'ticket', 'body', 'resolution'" in caught.value.message and '"columns"' in caught.value.message


def test_an_explicit_columns_mapping_is_used():
    data = b"id,Body,Resolution,Team\n1,My screen is black,Replug the cable,hardware\n2,,Nothing,misc\n"
    records = read("tickets.csv", data, columns={"prompt": "body", "response": "Resolution", "label": "Team"})
    assert records[0] == Example(chat("My screen is black", "Replug the cable"), 2, label="hardware")
    assert isinstance(records[1], Problem) and records[1].line == 3 and "'Body' cell is empty" in records[1].message


def test_a_semicolon_csv_is_read_too():
    records = examples("eu.csv", b"Question;Answer\nWie geht's?;Gut, danke.\n")
    assert records[0].messages == chat("Wie geht's?", "Gut, danke.")


def test_markdown_question_sections_and_qa_pairs_become_chat_and_the_rest_text():
    records = examples("faq.md")
    assert records[0] == Example((), 1, text="# Acme Help Center\n\nWelcome to the Acme help center. "
                                             "Here you find answers to common questions.")
    assert records[1] == Example(chat("How do I reset my password?", "Open the sign-in page and click **Forgot "
                                      "password**.\nWe email you a link that works for one hour."), 5)
    assert records[2].text.startswith("## Shipping\n\nWe ship worldwide") and records[2].line == 10
    assert records[3] == Example(chat("Can I return a used item?", "Yes, within 30 days, if it is undamaged."), 17)
    assert records[4].line == 20 and records[5].messages[0] == Message("user", "Do you have a phone line")
    assert "# not a heading" in records[5].messages[1].content  # a comment in a code fence is no heading


def test_a_markdown_question_without_an_answer_is_a_problem():
    data = b"## Why?\n\n## Shipping\n\nQ: Do you ship to Mars?\n\n# Next\n\nSome prose.\n"
    records = read("x.md", data)
    assert [(type(r).__name__, r.line) for r in records] == [("Problem", 1), ("Problem", 5), ("Example", 7)]
    assert records[2].text == "# Next\n\nSome prose."


def test_text_before_the_first_speaker_is_a_problem():
    records = read("x.txt", b"Ticket 4411\nUser: hi\nAssistant: hello\n", format="transcript")
    assert records[0].line == 1 and "before any speaker tag" in records[0].message
    assert records[1] == Example(chat("hi", "hello"), 2)


def test_a_broken_item_in_a_json_array_names_its_line():
    data = b'[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "c" "completion": "d"}\n]\n'
    records = read("x.json", data)
    assert records[0].line == 2 and isinstance(records[1], Problem) and records[1].line == 3


def test_chatml_conversations_are_separated_by_blank_lines():
    records = examples("dialog.chatml.txt")
    assert records[0].messages == chat("What is the boiling point of water?",
                                       "100 °C at sea level.\n\nIt is lower at altitude.",
                                       system="You are a helpful assistant.")
    assert records[1] == Example(chat("Say hi.", "Hi!"), 10)


def test_an_unclosed_chatml_block_is_a_problem():
    records = read("x.txt", b"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello\n", format="chatml")
    assert records == [Problem(3, "this block has no <|im_end|>; the file ends inside it")]


def test_transcript_turns_run_until_the_next_speaker_and_conversations_end_at_rules():
    records = examples("transcript.txt")
    assert records[0].messages[3] == Message("assistant", "Try these steps:\n1. Unplug it for 30 seconds.\n"
                                                          "2. Update the firmware.\n\nIf it still drops, call us.")
    assert records[1] == Example(chat("Do you sell gift cards?", "Yes, from $10 to $500."), 10)
    assert records[2] == Example(chat("thanks", "You're welcome!"), 14)


def test_a_chatgpt_export_follows_the_branch_that_was_shown():
    records = examples("chatgpt-export.json")
    assert records[0].messages == chat("How do I feed a sourdough starter?",
                                       "Discard half, then add equal weights of flour and water.", "Thanks!")
    assert records[0].metadata == {"title": "Sourdough starter"}
    assert records[1] == Example(chat("How many grams in an ounce?", "About 28.35 grams."), 21,
                                 metadata={"title": "Unit conversion"})


def test_an_export_of_author_text_messages_is_a_transcript():
    data = json.dumps([{"messages": [{"author": "human", "text": "Hi"}, {"author": "tool", "text": "{}"},
                                     {"author": {"role": "assistant"}, "text": "Hello"}]}]).encode()
    assert detect_format(data, "export.json") == "transcript"
    assert examples("export.json", data)[0].messages == chat("Hi", "Hello")


def test_text_chunks_respect_the_token_budget_and_never_split_a_word():
    words, paragraphs = [f"word{i}" for i in range(1200)], []
    sizes = iter([7, 45, 120, 3, 60] * 20)
    while sum(map(len, paragraphs)) < len(words):
        start = sum(map(len, paragraphs))
        paragraphs.append(words[start:start + next(sizes)])
    data = "\n\n".join(" ".join(p) for p in paragraphs).encode()
    with io.BytesIO(data) as handle:
        chunks = list(read_records(handle, "notes.txt", DataFormat(chunk_tokens=64), lambda s: len(s.split())))
    assert all(c.messages == () and len(c.text.split()) <= 64 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == words  # every word whole, in order
    assert chunks[0] == Example((), 1, text=" ".join(paragraphs[0]) + "\n\n" + " ".join(paragraphs[1]))
    assert chunks[1].line == 5  # the long third paragraph starts a chunk of its own
    estimated = examples("notes.txt", data, chunk_tokens=64)
    assert all(len(c.text) <= 64 * 4 for c in estimated)  # about four characters a token without a tokenizer


def test_a_broken_line_deep_in_a_big_file_is_one_problem_and_the_rest_still_come():
    lines = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(1, 10_001)]
    lines[8999] = '{"prompt": "q9000", "completion": '
    records = read("big.jsonl", "\n".join(lines).encode())
    problems = [r for r in records if isinstance(r, Problem)]
    assert len(problems) == 1 and problems[0].line == 9000 and "invalid JSON" in problems[0].message
    assert len(records) - 1 == 9_999 and records[-1].line == 10_000


def test_a_line_that_is_not_utf8_is_an_encoding_problem_with_its_line():
    data = b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n'
    records = read("x.jsonl", data)
    assert records[1].kind == "encoding" and records[1].line == 2 and "UTF-8" in records[1].message
    assert [r.line for r in records if isinstance(r, Example)] == [1, 3]
    table = read("x.csv", b"question,answer\nhi,there\ncaf\xe9,noir\nok,fine\n")
    assert [(type(r).__name__, r.line) for r in table] == [("Example", 2), ("Problem", 3), ("Example", 4)]


@pytest.mark.parametrize("data,message", [
    (b"", "the file is empty"),
    (b"  \n\n", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "looks like a binary file, not text data"),
    (bytes(range(128, 256)) * 20, "looks like a binary file, not text data"),
])
def test_an_empty_or_binary_file_is_refused(data, message):
    with pytest.raises(DataError, match=message):
        detect_format(data, "upload.jsonl")
    with pytest.raises(DataError, match=message):
        read("upload.jsonl", data)


def test_strict_reading_stops_at_the_first_problem_naming_its_line():
    data = b'{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n'
    with pytest.raises(DataError, match="^line 2: 'prompt' and 'completion' must both be strings"):
        list(read_examples_strict(io.BytesIO(data), "x.jsonl", DataFormat()))
    turns = {"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "?"}]}
    data = b'{"prompt": "a", "completion": "b"}\n' + json.dumps(turns).encode()
    with pytest.raises(DataError, match="^line 2: the conversation starts with the assistant"):
        count_records(io.BytesIO(data), "x.jsonl", DataFormat())


def test_a_file_without_examples_is_refused_by_the_count():
    with pytest.raises(DataError, match="the file has no examples"):
        count_records(io.BytesIO(b"question,answer\n"), "x.csv", DataFormat())


def test_a_json_array_too_big_to_read_whole_asks_for_jsonl(monkeypatch):
    monkeypatch.setattr(json_files, "MAX_JSON_BYTES", 1000)
    data = json.dumps([{"prompt": "q" * 100, "completion": "a"}] * 20).encode()
    with pytest.raises(DataError, match="convert it to JSONL"):
        read("big.json", data)


def test_a_stream_that_cannot_seek_is_read_from_its_start():
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self.data.read(min(len(buffer), 7))
            buffer[:len(chunk)] = chunk
            return len(chunk)

    data = (FIXTURES / "support.csv").read_bytes()
    records = list(read_records(Pipe(data), "support.csv", DataFormat()))
    assert [r.line for r in records] == [2, 3, 6]


@pytest.mark.parametrize("name", ["big.jsonl", "big.csv"])
def test_reading_a_50_mb_file_keeps_memory_small(tmp_path, name):
    path = tmp_path / name
    filler = "lorem ipsum dolor sit amet " * 70
    with path.open("w") as out:
        if name.endswith(".csv"):
            out.write("prompt,response\n")
        for i in range(26_000):
            if name.endswith(".csv"):
                out.write(f'"question {i} {filler}","answer {i}"\n')
            else:
                out.write(json.dumps({"prompt": f"question {i} {filler}", "completion": f"answer {i}"}) + "\n")
    assert path.stat().st_size > 45 * 2**20
    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            count = sum(1 for r in read_records(handle, name, DataFormat()) if isinstance(r, Example))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 26_000
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MB"
