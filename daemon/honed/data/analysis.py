"""The dataset check: one streaming pass over a training file (and its validation file) that says, before any
training, what is wrong with the data and what to do about it.

Memory stays bounded because the pass keeps a few numbers per example, never the example: its line, a 64-bit
hash of its normalised text, its token length, its longest answer and a 64-value MinHash signature (datasketch)
of its word 3-shingles, about 280 bytes an example. Exact duplicates, near duplicates and train/validation
leakage are worked out from those arrays at the end, with numpy.

Near duplicates use LSH banding (10 bands of 6 signature values: a pair with Jaccard 0.8 shares a band with
probability 0.95, one with 0.5 with 0.15), and every candidate pair is checked against its signatures.
datasketch's MinHashLSH would do the banding, but it keeps a Python set per bucket, about 1.7 KB an example
(350 MB for 200,000 examples), so the bands are sorted as arrays here instead.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from hone.types import DatasetFinding, DatasetReport, LengthStats
from honed.data.example import Example, Problem, structure_problems

NUM_PERM = 64
BANDS, ROWS = 10, 6
NEAR_JACCARD = 0.8
TOKEN_BATCH = 256
TOKEN_BATCHES_IN_FLIGHT = 2
HISTOGRAM_BINS = 20
FEW_EXAMPLES = 100
SHORT_ANSWER_WORDS = 2
LONG_ANSWER_CHARS, LONG_ANSWER_RATIO = 2000, 10
IMBALANCE_RATIO, IMBALANCE_MIN = 0.1, 5

_BAND_MIX = np.random.default_rng(7).integers(1, 2**63, ROWS, dtype=np.uint64) | np.uint64(1)
_SHINGLE_MIX = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D], dtype=np.uint32)
# Words are what is left between whitespace once ASCII punctuation is blanked (str.translate and split are
# several times quicker than re.findall(r"\w+")).
_PUNCTUATION = {ord(c): " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# UTF-8 read as cp1252/latin-1: a lead byte shown as Ã, Â or â, then a continuation byte (0x80-0xBF) shown as
# the cp1252 character for it, as in "Ã©" for "é" or "â€™" for "’".
_CONTINUATION = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(0x80, 0xC0))
MOJIBAKE = re.compile("[ÃÂâ][" + re.escape(_CONTINUATION) + "]")
_DAMAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffdÃÂâ]")  # any of the three: one scan for all

# Checked in this order; a span one kind matched is not matched again by a later kind. Each pattern runs only
# where its gate (a substring, or a search Python's re does quickly) is found: the patterns alone cost ~0.5 s a MB.
_NUMBERS = re.compile(r"\d[\d .()/-]{5,}\d")
_PHONE = "|".join([
    r"\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,5}",  # international: +44 20 7946 0958, +1 (415) 555-0123
    r"\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}",  # North American: (415) 555-0123, 415-555-0123
    r"0\d{1,4}[ .-]\d{3,4}[ .-]?\d{3,4}|0\d(?:[ .]\d{2}){4}",  # national, with a trunk 0: 020 7946 0958
])
PII_PATTERNS: list[tuple[str, str | re.Pattern[str], re.Pattern[str]]] = [
    ("secret_aws_key", re.compile("AKIA|ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("secret_github_token", re.compile("gh[pousr]_|github_pat_"),
     re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("secret_openai_key", "sk-", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("secret_generic", re.compile(r"[:=]\s*[\"']?[A-Za-z0-9+/_-]{16}"), re.compile(
        r"(?i)\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?key|auth[_-]?token|token|password|passwd)"
        r"[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9+/_-]{16,}={0,2})")),
    ("pii_email", "@", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    ("pii_credit_card", _NUMBERS, re.compile(r"\b[3-6]\d{3}(?:[ -]?\d){9,15}\b")),
    ("pii_ipv4", _NUMBERS, re.compile(
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)")),
    ("pii_phone", _NUMBERS, re.compile(rf"(?<![\w+])(?:{_PHONE})(?!\w)")),
]
_REMOVE_SECRET = "remove or replace them before training"

# code -> (severity, what the count counts, suggestion). Messages read "<count> <noun>[, e.g. ...]"; see _say.
FINDINGS: dict[str, tuple[str, str, str]] = {
    "no_examples": ("error", "examples could be read", "check the file's format (or name it) and its encoding"),
    "unreadable_records": ("error", "record{s} could not be read",
                           "fix these records: honed refuses a training file until every record reads"),
    "role_structure": ("error", "example{s} break{v} the turn rules",
                       "fix the turns (one optional system message first, then user and assistant alternating, "
                       "with at least one answer); honed refuses a training file until they do"),
    "encoding_problems": ("error", "record{s} {are} not valid UTF-8", "re-save the file as UTF-8"),
    "validation_unreadable": ("error", "validation record{s} could not be read",
                              "fix these records: honed refuses a validation file until every record reads"),
    "over_max_seq_len": ("warning", "example{s} {are} longer than max_seq_len",
                         "raise max_seq_len (more memory) or shorten or split them: training cuts them and never "
                         "learns the cut part"),
    "exact_duplicates": ("warning", "example{s} repeat{v} an earlier example exactly",
                         "remove the repeats: each copy weighs that answer once more"),
    "near_duplicates": ("warning", "example{s} nearly repeat{v} an earlier one (Jaccard >= 0.8 on word 3-shingles)",
                        "remove or vary them; if they share a long instruction on purpose, this is expected"),
    "validation_leakage": ("warning", "validation example{s} also appear{v} in the training data",
                           "remove them from the validation file (or let honed split one off): otherwise the "
                           "validation loss looks better than the model is"),
    "label_imbalance": ("warning", "label{s} {are} rare next to the largest",
                        "add examples of the small classes, or merge or drop them: the model leans toward the "
                        "large ones"),
    "control_characters": ("warning", "example{s} contain{v} control characters (other than tab and newlines)",
                           "remove them: they are usually left over from copying or converting the data"),
    "replacement_characters": ("warning", "example{s} contain{v} U+FFFD replacement characters",
                               "the text was decoded with the wrong encoding once; recover it from the source"),
    "mojibake": ("warning", "example{s} look{v} double-encoded (mojibake such as \"Ã©\" for \"é\")",
                 "re-decode the text: it was UTF-8 read as Latin-1 or Windows-1252"),
    "secret_aws_key": ("warning", "example{s} contain{v} AWS access key ids", _REMOVE_SECRET),
    "secret_github_token": ("warning", "example{s} contain{v} GitHub tokens", _REMOVE_SECRET),
    "secret_openai_key": ("warning", "example{s} contain{v} API keys (sk-...)", _REMOVE_SECRET),
    "secret_generic": ("warning", "example{s} contain{v} secrets after key=/token=/password=", _REMOVE_SECRET),
    "pii_email": ("warning", "example{s} contain{v} email addresses",
                  "replace them (e.g. with name@example.com) unless the model must learn them"),
    "pii_phone": ("warning", "example{s} contain{v} phone numbers",
                  "replace them with placeholders unless the model must learn them"),
    "pii_ipv4": ("warning", "example{s} contain{v} IPv4 addresses",
                 "replace them (e.g. with 192.0.2.1) unless the model must learn them"),
    "pii_credit_card": ("warning", "example{s} contain{v} card numbers (they pass the Luhn check)",
                        "remove them before training"),
    "short_answers": ("warning", "example{s} {have} an answer of one or two words",
                      "check those answers are complete: the model learns to answer as briefly"),
    "long_answers": ("warning", "example{s} {have} an answer far longer than the rest",
                     "check they are not pasted documents or runaway text; trim or split them"),
}
_ORDER = {code: index for index, code in enumerate(FINDINGS)}  # the report lists findings in this order
READER_CODES = {"format": "unreadable_records", "structure": "role_structure", "encoding": "encoding_problems"}


def analyze(records: Iterable[Example | Problem], *, tokenizer: Any | None, max_seq_len: int,
            validation: Iterable[Example | Problem] | None = None, sample_limit: int = 20) -> DatasetReport:
    """A report on a training set (and its validation set) read as a stream of Examples and Problems, e.g.
    from `honed.data.formats.read_records`: counts, token lengths under `tokenizer`'s chat template (None: no
    lengths), findings with their exact counts and first `sample_limit` lines, and recommendations.

    Each iterable is read once, and memory grows by well under 1 KB an example (benchmarks/data_analysis.py).
    Nothing is raised for bad data: everything wrong with it is a finding. A tokenizer that fails raises."""
    check = _Pass(tokenizer, max_seq_len, sample_limit)
    try:
        for record in records:
            check.add(record)
        check.tokens.finish()
    finally:
        check.tokens.close()
    if validation is not None:
        check.validation = _Fingerprints()
        for record in validation:
            check.add_validation(record)
    return check.report()


class _Tally:
    """Where one kind of finding occurred: an exact count of records, their first lines and a first sample."""

    __slots__ = ("count", "lines", "sample", "last", "limit")

    def __init__(self, limit: int) -> None:
        self.count, self.lines, self.sample, self.last, self.limit = 0, [], None, None, limit

    def add(self, line: int, sample: str | None = None) -> None:
        if line == self.last:  # one record counts once, however many times it matches
            return
        self.count += 1
        self.last = line
        if len(self.lines) < self.limit:
            self.lines.append(line)
        if self.sample is None and sample is not None:
            self.sample = f"{sample} (line {line})"


class _Fingerprints:
    """Per example: line, hash of the normalised text, MinHash signature (zeros when it has no words)."""

    def __init__(self) -> None:
        self.lines, self.hashes, self.signatures, self.has_words = array("I"), array("Q"), bytearray(), array("B")
        # One sketch, cleared per example (building one per example costs more than filling it). Shingles come
        # in already hashed, so datasketch's hash function is the identity.
        from datasketch import MinHash  # scipy underneath: a second of the daemon's start, for uploads only

        self.minhash = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=int)

    def add(self, example: Example) -> None:
        if example.text is not None:
            exact, words_text = _normalise(example.text), example.text
        else:
            exact = "\x1e".join(f"{m.role}\x1f{_normalise(m.content)}" for m in example.messages)
            # A system prompt shared by every example would make them all look alike: shingle the dialogue only.
            words_text = "\n".join(m.content for m in example.messages if m.role != "system")
        self.lines.append(example.line)
        self.hashes.append(int.from_bytes(hashlib.blake2b(exact.encode(), digest_size=8).digest(), "little"))
        shingles = _shingle_hashes(words_text)
        self.has_words.append(len(shingles) > 0)
        if len(shingles):
            self.minhash.clear()
            self.minhash.update_batch(shingles.tolist())
            self.signatures += self.minhash.hashvalues.tobytes()
        else:
            self.signatures += bytes(4 * NUM_PERM)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.frombuffer(self.lines, dtype=np.uint32), np.frombuffer(self.hashes, dtype=np.uint64),
                np.frombuffer(self.signatures, dtype=np.uint32).reshape(-1, NUM_PERM),
                np.frombuffer(self.has_words, dtype=np.uint8).astype(bool))


class _TokenLengths:
    """Token lengths, counted in batches: a chat example as its rendered chat template, a text example as its
    text plus the end-of-text token (how tokenize_example builds them).

    The Rust tokenizer releases the GIL, so batches are tokenized on a worker thread while the pass goes on
    with the next examples; at most TOKEN_BATCHES_IN_FLIGHT batches wait, which bounds the memory."""

    def __init__(self, tokenizer: Any, max_seq_len: int, over: _Tally) -> None:
        self.tokenizer, self.max_seq_len, self.over = tokenizer, max_seq_len, over
        self.lengths = array("I")
        self.pending: list[Example] = []
        self.eos = 1 if getattr(tokenizer, "eos_token_id", None) is not None else 0
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="honed-analysis") if tokenizer is not None else None
        self.in_flight: deque[tuple[Future[list[int]], list[int]]] = deque()

    def add(self, example: Example) -> None:
        if self.worker is None:
            return
        self.pending.append(example)
        if len(self.pending) >= TOKEN_BATCH:
            self._submit()

    def finish(self) -> None:
        """Wait for every length; call once the examples are all added."""
        if self.worker is None:
            return
        self._submit()
        while self.in_flight:
            self._collect()
        self.close()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            rendered = self._render([e for e in batch if e.text is None])
            texts = [e.text for e in batch if e.text is not None]
            is_chat = [e.text is None for e in batch]
            assert self.worker is not None
            self.in_flight.append((self.worker.submit(self._count_batch, is_chat, rendered, texts),
                                   [e.line for e in batch]))
        while len(self.in_flight) > TOKEN_BATCHES_IN_FLIGHT:
            self._collect()

    def _collect(self) -> None:
        future, lines = self.in_flight.popleft()
        for line, length in zip(lines, future.result()):
            self.lengths.append(length)
            if length > self.max_seq_len:
                self.over.add(line)

    def _count_batch(self, is_chat: list[bool], rendered: list[str], texts: list[str]) -> list[int]:
        chats, plain = iter(self._count(rendered)), iter(self._count(texts))
        return [next(chats) if chat else next(plain) + self.eos for chat in is_chat]

    def _render(self, examples: list[Example]) -> list[str]:
        conversations = [[{"role": m.role, "content": m.content} for m in e.messages] for e in examples]
        if not conversations:
            return []
        try:
            return list(self.tokenizer.apply_chat_template(conversations, tokenize=False))
        except Exception:  # a template that rejects one example's roles; the structure check reports those
            return [self._render_one(c) for c in conversations]

    def _render_one(self, conversation: list[dict[str, str]]) -> str:
        try:
            return self.tokenizer.apply_chat_template(conversation, tokenize=False)
        except Exception:  # no chat template, or one that rejects these roles: count the contents alone
            return "\n".join(m["content"] for m in conversation)

    def _count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # the Rust tokenizer: no Python lists of ids built just to be measured
            return [len(encoding) for encoding in backend.encode_batch(texts, add_special_tokens=False)]
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


class _Pass:
    def __init__(self, tokenizer: Any | None, max_seq_len: int, sample_limit: int) -> None:
        self.max_seq_len, self.limit = max_seq_len, sample_limit
        self.tallies: dict[str, _Tally] = {}
        self.examples = self.chats = self.turns = self.with_system = 0
        self.problem_records, self.last_problem_line = 0, None
        self.labels: Counter[str] = Counter()
        self.answer_chars = array("I")
        self.train = _Fingerprints()
        self.validation: _Fingerprints | None = None
        self.tokens = _TokenLengths(tokenizer, max_seq_len, self.tally("over_max_seq_len"))

    def tally(self, code: str) -> _Tally:
        if code not in self.tallies:
            self.tallies[code] = _Tally(self.limit)
        return self.tallies[code]

    def _problem_record(self, line: int) -> None:
        if line != self.last_problem_line:
            self.problem_records += 1
            self.last_problem_line = line

    def add(self, record: Example | Problem) -> None:
        if isinstance(record, Problem):
            self._problem_record(record.line)
            self.tally(READER_CODES.get(record.kind, f"{record.kind}_problems")).add(record.line, record.message)
            return
        example = record
        self.examples += 1
        broken = structure_problems(example)
        if broken:
            self._problem_record(example.line)
            self.tally("role_structure").add(example.line, "; ".join(broken))
        if example.label is not None:
            self.labels[example.label] += 1
        if example.text is not None:
            content, longest = example.text, 0
        else:
            dialogue = [m for m in example.messages if m.role != "system"]
            self.chats += 1
            self.turns += len(dialogue)
            self.with_system += len(dialogue) != len(example.messages)
            answers = [m.content.strip() for m in dialogue if m.role == "assistant" and m.content.strip()]
            if any(len(a.split()) <= SHORT_ANSWER_WORDS for a in answers):
                self.tally("short_answers").add(example.line, repr(min(answers, key=len)[:40]))
            content, longest = "\n".join(m.content for m in example.messages), max(map(len, answers), default=0)
        self.answer_chars.append(longest)
        self._scan(example.line, content)
        self.train.add(example)
        self.tokens.add(example)

    def add_validation(self, record: Example | Problem) -> None:
        assert self.validation is not None
        if isinstance(record, Problem):
            self.tally("validation_unreadable").add(record.line, record.message)
        else:
            self.validation.add(record)

    def _scan(self, line: int, text: str) -> None:
        """Encoding damage and personal data or secrets in one example's text."""
        if _DAMAGE.search(text):
            found = CONTROL.search(text)
            if found:
                self.tally("control_characters").add(line, f"U+{ord(found.group()):04X}")
            if "\ufffd" in text:
                self.tally("replacement_characters").add(line)
            found = MOJIBAKE.search(text)
            if found:
                self.tally("mojibake").add(line, repr(found.group()))
        taken: list[tuple[int, int]] = []
        gates: dict[str | re.Pattern[str], bool] = {}
        for code, gate, pattern in PII_PATTERNS:
            if gate not in gates:
                gates[gate] = gate in text if isinstance(gate, str) else gate.search(text) is not None
            if not gates[gate]:
                continue
            for match in pattern.finditer(text):
                start, end = match.span()
                if any(s < end and start < e for s, e in taken):
                    continue
                value = match.group("value") if code == "secret_generic" else match.group()
                if not _plausible(code, value):
                    continue
                taken.append((start, end))
                self.tally(code).add(line, _mask(value))

    def report(self) -> DatasetReport:
        findings: dict[str, DatasetFinding] = {}
        of: dict[str, int] = {}  # findings that count out of a total: "2 of 7 labels are rare"
        if self.examples == 0:
            _, noun, suggestion = FINDINGS["no_examples"]
            findings["no_examples"] = DatasetFinding(code="no_examples", severity="error", message=f"no {noun}",
                                                     count=0, lines=[], suggestion=suggestion)
        exact = _exact_duplicates(self.train, self.limit, findings)
        _near_duplicates(self.train, self.validation, exact, self.limit, findings)
        tokens = self._length_stats()
        self._long_answers()
        self._label_balance(of)
        short = self.tallies.get("short_answers")
        severities = {}
        if short is not None and short.count * 2 >= max(self.chats, 1):
            # Most answers are this short: it is the data's style (classification, extraction), not a defect.
            severities["short_answers"] = "info"
        for code, tally in self.tallies.items():
            if tally.count:
                findings[code] = _finding(code, tally, severities.get(code), of.get(code))
        ordered = sorted(findings.values(), key=lambda f: (("error", "warning", "info").index(f.severity),
                                                           _ORDER.get(f.code, len(_ORDER))))
        return DatasetReport(
            examples=self.examples, records_with_problems=self.problem_records,
            conversations_with_system=self.with_system,
            mean_turns=round(self.turns / self.chats, 2) if self.chats else 0.0,
            labels=dict(self.labels.most_common()) if self.labels else None, tokens=tokens, findings=ordered,
            recommendations=recommendations(ordered, examples=self.examples, max_seq_len=self.max_seq_len,
                                            has_validation=self.validation is not None, labels=self.labels),
            validation_examples=len(self.validation.lines) if self.validation is not None else None)

    def _length_stats(self) -> LengthStats | None:
        if self.tokens.tokenizer is None or not self.tokens.lengths:
            return None
        lengths = np.frombuffer(self.tokens.lengths, dtype=np.uint32)
        low, high = int(lengths.min()), int(lengths.max())
        bins = min(HISTOGRAM_BINS, high - low + 1)
        edges = np.unique(np.linspace(low, high + 1, bins + 1).round().astype(np.int64))
        histogram, _ = np.histogram(lengths, bins=edges)
        p50, p90, p99 = (int(np.percentile(lengths, q, method="nearest")) for q in (50, 90, 99))
        self.tally("over_max_seq_len").sample = f"the longest has {high:,} tokens" if high > self.max_seq_len else None
        return LengthStats(min=low, p50=p50, p90=p90, p99=p99, max=high, mean=round(float(lengths.mean()), 1),
                           histogram=histogram.tolist(), bin_edges=edges.tolist(),
                           over_max=self.tallies["over_max_seq_len"].count, max_seq_len=self.max_seq_len)

    def _long_answers(self) -> None:
        chars = np.frombuffer(self.answer_chars, dtype=np.uint32)
        if not (chars > 0).any():
            return
        limit = max(LONG_ANSWER_CHARS, LONG_ANSWER_RATIO * float(np.median(chars[chars > 0])))
        lines, _, _, _ = self.train.arrays()
        for index in np.flatnonzero(chars > limit):
            self.tally("long_answers").add(int(lines[index]), f"{int(chars[index]):,} characters")

    def _label_balance(self, of: dict[str, int]) -> None:
        if len(self.labels) < 2:
            return
        (largest, most), (smallest, fewest) = self.labels.most_common(1)[0], self.labels.most_common()[-1]
        small = [label for label, n in self.labels.items() if n < IMBALANCE_RATIO * most or n < IMBALANCE_MIN]
        if small:
            tally = self.tally("label_imbalance")
            tally.count = len(small)
            tally.sample = f"{smallest!r} has {fewest:,} examples against {most:,} for {largest!r}"
            of["label_imbalance"] = len(self.labels)


def _finding(code: str, tally: _Tally, severity: str | None, of: int | None) -> DatasetFinding:
    default_severity, _, suggestion = FINDINGS.get(code, ("error", "", "fix these records"))
    if code == "short_answers" and severity == "info":
        suggestion = "most answers are this short: fine for classification or extraction, else check them"
    message = _say(code, tally.count, of)
    message += f", e.g. {tally.sample}" if tally.sample else ""
    return DatasetFinding(code=code, severity=severity or default_severity, message=message, count=tally.count,
                          lines=tally.lines, suggestion=suggestion)


def _exact_duplicates(train: _Fingerprints, limit: int, findings: dict[str, DatasetFinding]) -> np.ndarray:
    """Mark examples whose normalised text repeats an earlier one; returns the mask of those repeats."""
    lines, hashes, _, _ = train.arrays()
    repeat = np.zeros(len(hashes), dtype=bool)
    if not len(hashes):
        return repeat
    order = np.argsort(hashes, kind="stable")
    starts = np.flatnonzero(np.r_[True, hashes[order][1:] != hashes[order][:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    repeat[order[np.setdiff1d(np.arange(len(order)), starts)]] = True
    if not repeat.any():
        return repeat
    multi = np.flatnonzero(sizes > 1)
    multi = multi[np.argsort(order[starts[multi]])][:limit]
    groups = [[int(lines[i]) for i in order[starts[r]:starts[r] + sizes[r]][:limit]] for r in multi]
    count = int(repeat.sum())
    findings["exact_duplicates"] = DatasetFinding(
        code="exact_duplicates", severity="warning",
        message=f"{_say('exact_duplicates', count)}, in {_plural(int((sizes > 1).sum()), 'group')}",
        count=count, lines=[int(lines[i]) for i in np.flatnonzero(repeat)[:limit]],
        suggestion=FINDINGS["exact_duplicates"][2], groups=groups)
    return repeat


def _band_keys(signatures: np.ndarray, band: int) -> np.ndarray:
    values = signatures[:, band * ROWS:(band + 1) * ROWS].astype(np.uint64)
    return (values * _BAND_MIX).sum(axis=1)  # wraps modulo 2**64: a hash of the band's values


def _similar(left: np.ndarray, a: np.ndarray, right: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether signature pairs (left[a[i]], right[b[i]]) estimate Jaccard >= NEAR_JACCARD, in bounded chunks."""
    out = np.zeros(len(a), dtype=bool)
    for start in range(0, len(a), 16384):
        chunk = slice(start, start + 16384)
        out[chunk] = (left[a[chunk]] == right[b[chunk]]).mean(axis=1) >= NEAR_JACCARD
    return out


def _near_duplicates(train: _Fingerprints, validation: _Fingerprints | None, repeat: np.ndarray, limit: int,
                     findings: dict[str, DatasetFinding]) -> None:
    lines, hashes, signatures, has_words = train.arrays()
    candidates = np.flatnonzero(has_words & ~repeat)
    pairs = np.zeros(0, dtype=np.int64)  # candidate pairs (i, j), i < j, as i * n + j: unique, so bounded
    if validation is not None:
        v_lines, v_hashes, v_signatures, v_words = validation.arrays()
        leaked = np.full(len(v_lines), -1, dtype=np.int64)  # the training example each validation one repeats
        exact = np.zeros(len(v_lines), dtype=bool)
        if len(hashes):
            by_hash = np.argsort(hashes, kind="stable")  # equal hashes stay in file order: the first comes first
            at = np.minimum(np.searchsorted(hashes[by_hash], v_hashes), len(by_hash) - 1)
            exact = hashes[by_hash][at] == v_hashes
            leaked[exact] = by_hash[at][exact]
        queries = np.flatnonzero(~exact & v_words)
        query_a, query_b = [], []
    for band in range(BANDS):
        keys = _band_keys(signatures, band)[candidates]  # not signatures[candidates]: that copies them all
        order = np.argsort(keys, kind="stable")
        keys, members = keys[order], candidates[order]
        new_run = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
        first_of_run = members[np.flatnonzero(new_run)][np.cumsum(new_run) - 1]
        later = np.flatnonzero(~new_run)
        # Each later member of a bucket pairs with the one before it and with the bucket's first.
        low = np.r_[members[later - 1], first_of_run[later]]
        high = np.r_[members[later], members[later]]
        low, high = np.minimum(low, high), np.maximum(low, high)
        pairs = np.union1d(pairs, (low * len(lines) + high)[low != high])
        if validation is not None and len(keys) and len(queries):
            v_keys = _band_keys(v_signatures[queries], band)
            at = np.minimum(np.searchsorted(keys, v_keys), len(keys) - 1)
            hit = keys[at] == v_keys
            query_a.append(queries[hit])
            query_b.append(first_of_run[at[hit]])
    _report_near(lines, signatures, *np.divmod(pairs, max(len(lines), 1)), limit, findings)
    if validation is None:
        return
    if query_a:
        a, b = np.concatenate(query_a), np.concatenate(query_b)
        ok = _similar(v_signatures, a, signatures, b)
        for v, t in sorted(zip(a[ok].tolist(), b[ok].tolist())):
            if leaked[v] < 0 or t < leaked[v]:
                leaked[v] = t
    found = np.flatnonzero(leaked >= 0)
    if len(found):
        near = int((~exact[found]).sum())
        findings["validation_leakage"] = DatasetFinding(
            code="validation_leakage", severity="warning",
            message=f"{_say('validation_leakage', len(found), len(v_lines))} "
                    f"({len(found) - near:,} exactly, {near:,} nearly)",
            count=len(found), lines=[int(v_lines[v]) for v in found[:limit]],
            suggestion=FINDINGS["validation_leakage"][2],
            groups=[[int(v_lines[v]), int(lines[leaked[v]])] for v in found[:limit]])


def _report_near(lines: np.ndarray, signatures: np.ndarray, a: np.ndarray, b: np.ndarray, limit: int,
                 findings: dict[str, DatasetFinding]) -> None:
    similar = _similar(signatures, a, signatures, b)
    if not similar.any():
        return
    root: dict[int, int] = {}

    def find(x: int) -> int:
        while root.setdefault(x, x) != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for x, y in zip(a[similar].tolist(), b[similar].tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            root[max(rx, ry)] = min(rx, ry)  # the earliest example stands for its group
    groups: dict[int, list[int]] = {}
    for member in sorted(root):
        groups.setdefault(find(member), []).append(member)
    repeats = sorted(m for first, members in groups.items() for m in members if m != first)
    findings["near_duplicates"] = DatasetFinding(
        code="near_duplicates", severity="warning",
        message=f"{_say('near_duplicates', len(repeats))}, in {_plural(len(groups), 'group')}",
        count=len(repeats), lines=[int(lines[m]) for m in repeats[:limit]],
        suggestion=FINDINGS["near_duplicates"][2],
        groups=[[int(lines[m]) for m in members[:limit]] for _, members in sorted(groups.items())[:limit]])


def recommendations(findings: Sequence[DatasetFinding], *, examples: int, max_seq_len: int, has_validation: bool,
                    labels: Counter[str] | None = None) -> list[str]:
    """Plain sentences saying what to do, most important first, from a report's findings and counts."""
    by_code = {f.code: f for f in findings}
    said: list[str] = []

    def first_line(f: DatasetFinding) -> str:
        return f" (first at line {f.lines[0]:,})" if f.lines else ""

    for f in findings:
        if f.severity == "error" and f.code != "no_examples":
            said.append(f"{f.message.split(', e.g.')[0]}{first_line(f)}: fix them before uploading for training")
    if examples == 0:
        said.append("no examples could be read: check the file's format and encoding")
    elif examples < FEW_EXAMPLES:
        said.append(f"only {examples:,} examples: enable augmentation or expect overfitting")
    for code, noun, sentence in (
            ("over_max_seq_len", "example", "{} over {max_seq_len:,} tokens: raise max_seq_len or they are cut"),
            ("exact_duplicates", "exact duplicate", "{}: remove them (they weigh those answers double)"),
            ("near_duplicates", "near duplicate",
             "{}: remove or vary them (they weigh those answers more than the rest)"),
            ("validation_leakage", "example",
             "validation shares {} with training: the validation loss will look better than it is")):
        if code in by_code:
            said.append(sentence.format(_plural(by_code[code].count, noun), max_seq_len=max_seq_len))
    if not has_validation and examples:
        said.append("no validation file: honed can split one off (10%)")
    if "label_imbalance" in by_code and labels:
        (largest, most), (smallest, fewest) = labels.most_common(1)[0], labels.most_common()[-1]
        said.append(f"label {smallest!r} has {fewest:,} examples against {most:,} for {largest!r}: add examples "
                    f"of the small classes or expect the model to favour {largest!r}")
    secrets = sum(f.count for f in findings if f.code.startswith("secret_"))
    if secrets:
        said.append(f"{_plural(secrets, 'secret')} (API keys, tokens) in the data: remove them before training; "
                    "a model can repeat them word for word")
    personal = [f for f in findings if f.code.startswith("pii_")]
    if personal:
        kinds = ", ".join(f.code.removeprefix("pii_").replace("_", " ") for f in personal)
        said.append(f"personal data ({kinds}) in {_plural(sum(f.count for f in personal), 'place')}: replace it with "
                    "placeholders unless the model must learn it")
    damaged = sum(by_code[c].count for c in ("control_characters", "replacement_characters", "mojibake")
                  if c in by_code)
    if damaged:
        said.append(f"{_plural(damaged, 'example')} with damaged characters: fix the encoding at the source "
                    "and export again")
    for code, advice in (("short_answers", "check they are complete, or the model learns to answer that briefly"),
                         ("long_answers", "check they are not pasted documents; trim or split them")):
        f = by_code.get(code)
        if f is not None and f.severity == "warning":
            said.append(f"{_say(code, f.count)}: {advice}")
    return said


def _say(code: str, count: int, of: int | None = None) -> str:
    """A finding's count and what it counts, in agreement: "1 example contains", "3 of 40 examples contain"."""
    noun = FINDINGS[code][1] if code in FINDINGS else f"record{{s}} {{have}} {code.removesuffix('_problems')} problems"
    one = count == 1
    return f"{count:,}{f' of {of:,}' if of is not None else ''} " + noun.format(
        s="" if one and of is None else "s", v="s" if one else "", are="is" if one else "are",
        have="has" if one else "have")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _shingle_hashes(text: str) -> np.ndarray:
    """32-bit hashes of a text's word 3-shingles (one shingle for under three words; none without words)."""
    words = text.casefold().translate(_PUNCTUATION).split()
    hashes = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint32, count=len(words))
    if len(hashes) < 3:
        return hashes[:1] * _SHINGLE_MIX[0] + np.uint32(len(hashes)) if len(hashes) else hashes
    # Wraps modulo 2**32; datasketch mixes each value (MurmurHash3's finaliser) before permuting it.
    return hashes[:-2] * _SHINGLE_MIX[0] + hashes[1:-1] * _SHINGLE_MIX[1] + hashes[2:] * _SHINGLE_MIX[2]


def _plausible(code: str, value: str) -> bool:
    """Cut the false positives a pattern alone lets through."""
    digits = [int(c) for c in value if c.isdigit()]
    if code == "pii_credit_card":
        if not 13 <= len(digits) <= 19:
            return False
        checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        return checksum % 10 == 0
    if code == "pii_phone":
        return 8 <= len(digits) <= 15
    if code == "pii_ipv4":
        return not value.startswith(("0.", "127.", "255."))
    if code == "secret_generic":
        return bool(digits) and any(c.isalpha() for c in value) and (
            len(value) >= 20 or re.fullmatch(r"[0-9a-fA-F]+", value) is not None)
    return True


def _mask(value: str) -> str:
    """Enough of a matched value to find it again, never the whole: at most 4 characters and a quarter of it."""
    keep = min(4, len(value) // 4)
    return value[:keep] + "*" * (len(value) - keep)
