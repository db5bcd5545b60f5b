"""The code-generation recipe's data: small Python functions from a one-line description and a signature.

A bounded family of tasks (FAMILIES: list, string and dict utilities), each drawn with varied function and
parameter names and constants, so "sum the numbers above 7" and "sum the numbers above 12" are different tasks.
Training answers are the reference solution in one ```python block; each test case's `reference` holds hidden
unit tests (asserts whose expected values come from running the reference solution here), which honed's
code_pass metric runs in its sandbox against the model's code. No test task (family, name, parameter and
constants) appears in train or validation. Everything is drawn with random.Random(SEED): same bytes everywhere.

    python recipes/code-generation/generate.py    # rewrites data/{train,validation,test}.jsonl

Licence: the generated data is dedicated to the public domain (CC0 1.0).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 8402
SIZES = {"train": 192, "validation": 30, "test": 200}
SYSTEM = "You write Python functions. Reply with the code only, in one ```python block."
TESTS_PER_TASK = 4

# Short and long words, with each letter of LETTERS starting one word in lower and one in upper case: enough
# variety that a solution which ignores case, length or a threshold fails some test.
WORDS = ("a", "I", "to", "ox", "be", "apple", "Anchor", "boat", "Berry", "date", "Dune", "echo", "Eel", "ice", "Ink",
         "lime", "Lemon", "mango", "Melon", "nut", "Net", "oak", "Olive", "rope", "Reef", "sea", "Sail", "tide", "Tea",
         "kiwi", "banana", "Grape", "watermelon", "lighthouse", "starboard")
LETTERS = "abdeilmnorst"
PALINDROMES = ("racecar", "Step on no pets", "Never odd or even", "Top spot", "level", "A Santa at NASA")
PREFIXES = ("pre_", "x_", "my_", "id_", "tmp_", "new_", "old_", "v2_")
SEPARATORS = {" ": "spaces", "-": "dashes", ", ": "commas", "|": "pipes", "_": "underscores", "/": "slashes"}

# What each kind of parameter is called (one name is drawn per task) and how its test values are made.
PARAM_NAMES = {
    "ints": ("values", "numbers", "nums", "items", "data"),
    "words": ("words", "strings", "names", "items", "labels"),
    "text": ("text", "s", "sentence", "line", "message"),
    "int": ("x", "n", "value", "number"),
    "dict": ("counts", "scores", "stock", "table", "totals"),
    "lists": ("lists", "groups", "rows", "chunks"),
}
TYPES = {"ints": "list[int]", "words": "list[str]", "text": "str", "int": "int", "dict": "dict[str, int]",
         "lists": "list[list[int]]"}


def _ints(rng: random.Random) -> list[int]:
    return [rng.randint(-5, 30) for _ in range(rng.randint(1, 7))]


def _words(rng: random.Random) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 7)))


def _dict(rng: random.Random) -> dict[str, int]:
    keys = rng.sample(WORDS, rng.randint(0, 5))
    values = rng.sample(range(-3, 40), len(keys))  # distinct, so a dict can be inverted
    return dict(zip(keys, values))


def _lists(rng: random.Random) -> list[list[int]]:
    return [_ints(rng)[:3] for _ in range(rng.randint(0, 4))]


VALUES: dict[str, Callable[[random.Random], Any]] = {
    "ints": _ints, "words": _words, "text": _text, "int": lambda rng: rng.randint(-50, 150), "dict": _dict,
    "lists": _lists}
# Every task's last test is its kind's edge case: empty input, or a text shorter than any threshold.
EDGES: dict[str, Any] = {"ints": [], "words": [], "text": "ox", "dict": {}, "lists": [[]]}


@dataclass(frozen=True)
class Family:
    names: tuple[str, ...]
    """Function names; {k}, {c} etc. are the task's constants."""
    param: str
    """The kind of the one parameter (a key of PARAM_NAMES); {p} is its name in the texts below."""
    returns: str
    description: str
    """What the function does, completing "... that <description>"."""
    body: str
    """The reference solution's body, indented by four spaces."""
    constants: Callable[[random.Random], dict[str, Any]] = lambda rng: {}
    inputs: Callable[[random.Random, dict[str, Any]], list[Any]] | None = None
    """The test arguments, when random values of the kind would not tell right from wrong (palindromes are rare)."""


def _k(low: int, high: int) -> Callable[[random.Random], dict[str, Any]]:
    return lambda rng: {"k": rng.randint(low, high)}


def _letters(rng: random.Random) -> dict[str, Any]:
    a, b = rng.sample(LETTERS, 2)
    return {"c": a, "a": a, "b": b}


def _prefix(rng: random.Random) -> dict[str, Any]:
    prefix = rng.choice(PREFIXES)
    return {"prefix": prefix, "tag": prefix.strip("_")}


def _separator(rng: random.Random) -> dict[str, Any]:
    sep = rng.choice(sorted(SEPARATORS))
    return {"sep": sep, "sep_name": SEPARATORS[sep]}


def _stride(rng: random.Random) -> dict[str, Any]:
    k = rng.randint(2, 4)
    return {"k": k, "nth": {2: "second", 3: "third", 4: "fourth"}[k]}


def _with_repeats(rng: random.Random, constants: dict[str, Any]) -> list[list[int]]:
    first, second = _ints(rng), _ints(rng)
    return [first + first[:2], second * 2, [3, 3, 1, 3], []]


def _range(rng: random.Random) -> dict[str, Any]:
    low = rng.randint(0, 30)
    return {"lo": low, "hi": low + rng.randint(5, 60)}


FAMILIES: tuple[Family, ...] = (
    Family(("sum_above_{k}", "total_over_{k}", "add_values_above_{k}"), "ints", "int",
           "returns the sum of the numbers in {p} that are greater than {k}",
           "    return sum(x for x in {p} if x > {k})", _k(0, 20)),
    Family(("count_multiples_of_{k}", "how_many_divisible_by_{k}", "count_divisible_{k}"), "ints", "int",
           "returns how many numbers in {p} are divisible by {k}",
           "    return sum(1 for x in {p} if x % {k} == 0)", _k(2, 9)),
    Family(("scale_by_{k}", "multiply_all_by_{k}", "times_{k}"), "ints", "list[int]",
           "returns a new list with every number in {p} multiplied by {k}",
           "    return [x * {k} for x in {p}]", _k(2, 12)),
    Family(("add_{k}_to_each", "shift_by_{k}", "increase_all_by_{k}"), "ints", "list[int]",
           "returns a new list with {k} added to every number in {p}",
           "    return [x + {k} for x in {p}]", _k(1, 50)),
    Family(("longer_than_{k}", "long_strings_{k}", "filter_longer_than_{k}"), "words", "list[str]",
           "returns the strings in {p} that have more than {k} characters, in their original order",
           "    return [w for w in {p} if len(w) > {k}]", _k(2, 6)),
    Family(("count_letter_{c}", "how_many_{c}", "count_{c}s"), "text", "int",
           "returns how many times the letter '{c}' appears in {p}, ignoring case",
           "    return {p}.lower().count('{c}')", _letters,
           lambda rng, c: [_text(rng), _text(rng), f"{c['c'].upper()}{c['c']}x {c['c'].upper()}", "ox"]),
    Family(("replace_{a}_with_{b}", "swap_{a}_for_{b}", "{a}_to_{b}"), "text", "str",
           "returns {p} with every '{a}' replaced by '{b}' (case-sensitive)",
           "    return {p}.replace('{a}', '{b}')", _letters),
    Family(("reverse_words_{sep_name}", "words_backwards_{sep_name}", "flip_words_{sep_name}"), "text", "str",
           "returns the words of {p} (split on whitespace) in reverse order, joined by '{sep}'",
           "    return '{sep}'.join(reversed({p}.split()))", _separator),
    Family(("shorten_to_{k}", "truncate_{k}", "clip_text_{k}"), "text", "str",
           "returns {p} unchanged if it has at most {k} characters, otherwise its first {k} characters "
           "followed by '...'",
           "    return {p} if len({p}) <= {k} else {p}[:{k}] + '...'", _k(3, 20)),
    Family(("clamp_{lo}_{hi}", "limit_{lo}_{hi}", "bound_{lo}_{hi}"), "int", "int",
           "returns {p} limited to the range {lo} to {hi}, inclusive",
           "    return max({lo}, min({hi}, {p}))", _range,
           lambda rng, c: [c["lo"] - rng.randint(1, 30), rng.randint(c["lo"], c["hi"]), c["hi"] + rng.randint(1, 30),
                           c["hi"]]),
    Family(("keys_at_least_{k}", "big_entries_{k}", "keys_with_{k}_or_more"), "dict", "list[str]",
           "returns the keys of {p} whose value is at least {k}, sorted alphabetically",
           "    return sorted(key for key, value in {p}.items() if value >= {k})", _k(0, 30)),
    Family(("invert", "swap_keys_and_values", "reverse_mapping"), "dict", "dict[int, str]",
           "returns a new dict that maps each value of {p} to its key (the values are all different)",
           "    return {{value: key for key, value in {p}.items()}}"),
    Family(("unique_in_order", "remove_duplicates", "dedupe"), "ints", "list[int]",
           "returns the numbers of {p} without repeats, keeping the first occurrence of each, in order",
           "    return list(dict.fromkeys({p}))", lambda rng: {}, _with_repeats),
    Family(("running_total_from_{k}", "cumulative_sums_{k}", "prefix_sums_from_{k}"), "ints", "list[int]",
           "returns the running totals of {p} starting from {k}: item i is {k} plus the sum of the first i+1 "
           "numbers",
           "    total = {k}\n    out = []\n    for x in {p}:\n        total += x\n        out.append(total)\n"
           "    return out", _k(0, 10)),
    Family(("index_of_largest", "argmax", "position_of_max"), "ints", "int",
           "returns the index of the largest number in {p} (the first if it appears more than once), or -1 when "
           "{p} is empty",
           "    return {p}.index(max({p})) if {p} else -1"),
    Family(("add_prefix_{tag}", "prefix_with_{tag}", "tag_{tag}"), "words", "list[str]",
           "returns a new list with '{prefix}' put in front of every string in {p}",
           "    return ['{prefix}' + w for w in {p}]", _prefix),
    Family(("count_words_over_{k}", "long_word_count_{k}", "words_longer_than_{k}"), "text", "int",
           "returns how many words of {p} (split on whitespace) have more than {k} characters",
           "    return sum(1 for w in {p}.split() if len(w) > {k})", _k(2, 6)),
    Family(("join_with_{sep_name}", "glue_{sep_name}", "concat_{sep_name}"), "words", "str",
           "returns the strings of {p} joined into one string with '{sep}' between them",
           "    return '{sep}'.join({p})", _separator),
    Family(("flatten", "flatten_once", "concat_lists"), "lists", "list[int]",
           "returns all numbers of the lists in {p} in one flat list, in order",
           "    return [x for part in {p} for x in part]"),
    Family(("average_to_{k}_places", "mean_rounded_{k}", "rounded_mean_{k}"), "ints", "float",
           "returns the mean of {p} rounded to {k} decimal places, or 0.0 when {p} is empty",
           "    return round(sum({p}) / len({p}), {k}) if {p} else 0.0", _k(0, 3)),
    Family(("count_vowels", "vowel_count", "number_of_vowels"), "text", "int",
           "returns how many vowels (a, e, i, o, u, ignoring case) {p} contains",
           "    return sum(1 for ch in {p}.lower() if ch in 'aeiou')"),
    Family(("is_palindrome", "reads_same_backwards", "palindrome_check"), "text", "bool",
           "returns True if {p} reads the same forwards and backwards when spaces are removed and case is "
           "ignored, else False",
           "    cleaned = {p}.replace(' ', '').lower()\n    return cleaned == cleaned[::-1]", lambda rng: {},
           lambda rng, c: [*rng.sample(PALINDROMES, 2), _text(rng), "ab"]),
    Family(("last_{k}", "take_last_{k}", "tail_{k}"), "ints", "list[int]",
           "returns the last {k} numbers of {p} (all of them when there are fewer)",
           "    return {p}[-{k}:]", _k(1, 5)),
    Family(("every_{k}_step", "stride_{k}", "pick_every_{k}"), "ints", "list[int]",
           "returns every {nth} number of {p}, starting with the first",
           "    return {p}[::{k}]", _stride),
    Family(("spread", "value_range", "max_minus_min"), "ints", "int",
           "returns the largest number in {p} minus the smallest, or 0 when {p} is empty",
           "    return max({p}) - min({p}) if {p} else 0"),
    Family(("count_starting_with_{c}", "starts_with_{c}_count", "how_many_start_{c}"), "words", "int",
           "returns how many strings in {p} start with the letter '{c}', ignoring case",
           "    return sum(1 for w in {p} if w.lower().startswith('{c}'))", _letters,
           lambda rng, c: [_words(rng), _words(rng), [c["c"].upper() + "ip", c["c"] + "op", "x" + c["c"]], []]),
    Family(("repeat_each_{k}", "stretch_{k}", "each_{k}_times"), "ints", "list[int]",
           "returns a new list in which every number of {p} appears {k} times in a row",
           "    return [x for x in {p} for _ in range({k})]", _k(2, 4)),
    Family(("how_many_below_{k}", "count_less_than_{k}", "count_under_{k}"), "ints", "int",
           "returns how many numbers in {p} are less than {k}",
           "    return sum(1 for x in {p} if x < {k})", _k(0, 15)),
)

PHRASINGS = (
    "Write a Python function `{signature}` that {description}.",
    "Implement `{signature}` in Python. It {description}.",
    "Python: write `{signature}`, which {description}.",
    "Define a function `{signature}` that {description}.",
    "I need a Python function `{signature}` that {description}.",
)


def task(rng: random.Random, family: Family) -> dict[str, Any]:
    """One task of `family`: its prompt, reference solution and hidden tests."""
    constants = family.constants(rng)
    name = rng.choice(family.names).format(**constants)
    param = rng.choice(PARAM_NAMES[family.param])
    fill = {**constants, "p": param}
    signature = f"{name}({param}: {TYPES[family.param]}) -> {family.returns}"
    solution = f"def {signature}:\n{family.body.format(**fill)}"
    namespace: dict[str, Any] = {}
    exec(solution, namespace)  # our own reference solution: its outputs are the tests' expected values
    if family.inputs is not None:
        arguments = family.inputs(rng, constants)
    else:
        arguments = [VALUES[family.param](rng) for _ in range(TESTS_PER_TASK - 1)] + [EDGES[family.param]]
    tests = [f"assert {name}({argument!r}) == {namespace[name](argument)!r}" for argument in arguments]
    description = family.description.format(**fill)
    prompt = rng.choice(PHRASINGS).format(signature=signature, description=description)
    return {"key": (signature, description), "prompt": prompt,
            "answer": f"```python\n{solution}\n```", "tests": "\n".join(tests)}


def build(seed: int = SEED) -> dict[str, list[dict]]:
    """The three splits as lists of records: chat examples for train and validation, eval cases (prompt and
    hidden tests as the reference) for test. Families take turns, so every split covers all of them."""
    rng = random.Random(seed)
    seen: set[tuple] = set()
    splits: dict[str, list[dict]] = {}
    # A family without constants has only names x parameter names tasks; once they are used up it drops out.
    families = list(FAMILIES)
    for split in ("test", "train", "validation"):
        records: list[dict] = []
        while len(records) < SIZES[split]:
            family = families[len(records) % len(families)]
            made = next((t for t in (task(rng, family) for _ in range(100)) if t["key"] not in seen), None)
            if made is None:
                families.remove(family)
                continue
            seen.add(made["key"])
            if split == "test":
                records.append({"prompt": made["prompt"], "reference": made["tests"]})
            else:
                records.append({"messages": [{"role": "system", "content": SYSTEM},
                                             {"role": "user", "content": made["prompt"]},
                                             {"role": "assistant", "content": made["answer"]}]})
        rng.shuffle(records)
        splits[split] = records
    return {name: splits[name] for name in SIZES}


def encode(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def main() -> None:
    out = Path(__file__).resolve().parent / "data"
    out.mkdir(exist_ok=True)
    for name, records in build().items():
        (out / f"{name}.jsonl").write_bytes(encode(records))
        print(f"{name}: {len(records)} examples")


if __name__ == "__main__":
    main()
