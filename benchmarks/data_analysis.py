"""Dataset-check benchmark: `honed.data.analysis.analyze` over a generated ~200 MB chat JSONL.

Generates varied chat examples (a Zipf-distributed vocabulary, one to three exchanges, some system prompts,
2% exact and 1% near duplicates, a little personal data) into a temporary directory, streams the file through
a plain JSONL reader into the analysis with a real tokenizer, and prints examples/s, wall time and peak RSS
(ru_maxrss) against the targets: under 500 MB RSS and under 5 minutes on 2 cores. Writes the numbers to
benchmarks/results/data-analysis.json with a description of the machine.

    .venv/bin/python benchmarks/data_analysis.py                  # 200 MB, SmolLM2's tokenizer when bundled
    .venv/bin/python benchmarks/data_analysis.py --size-mb 10 --tokenizer tiny   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RSS_TARGET_MB, TIME_TARGET_S = 500, 300

WORDS = """the of and to a in is it you that he was for on are with as I his they be at one have this from or had
by hot word but what some we can out other were all there when up use your how said an each she which do their time
if will way about many then them write would like so these her long make thing see him two has look more day could
go come did number sound no most people my over know water than call first who may down side been now find any new
work part take get place made live where after back little only round man year came show every good me give our
under name very through just form sentence great think say help low line differ turn cause much mean before move
right boy old too same tell does set three want air well also play small end put home read hand port large spell add
even land here must big high such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should country found answer school grow
study still learn plant cover food sun four between state keep eye never last let thought city tree cross farm hard
start might story saw far sea draw left late run while press close night real life few north open seem together next
white children begin got walk example ease paper group always music those both mark often letter until mile river
car feet care second book carry took science eat room friend began idea fish mountain stop once base hear horse cut
sure watch color face wood main enough plain girl usual young ready above ever red list though feel talk bird soon
body dog family direct pose leave song measure door product black short numeral class wind question happen complete
ship area half rock order fire south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast verb sing listen six table travel
less morning ten simple several vowel toward war lay against pattern slow center love person money serve appear road
map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait
plan figure star box noun field rest correct able pound done beauty drive stood contain front teach week final gave
green oh quick develop ocean warm free minute strong special mind behind clear tail produce fact street inch multiply
nothing course stay wheel full force blue object decide surface deep moon island foot system busy test record boat
common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate miss brought heat snow
tire bring yes distant fill east paint language among grand ball yet wave drop heart present heavy dance engine
position arm wide sail material size vary settle speak weight general ice matter circle pair include divide syllable
felt perhaps pick sudden count square reason length represent art subject region energy hunt probable bed brother egg
ride cell believe fraction forest sit race window store summer train sleep prove lone leg exercise wall catch mount
wish sky board joy winter sat written wild instrument kept glass grass cow job edge sign visit past soft fun bright
gas weather month million bear finish happy hope flower clothe strange gone jump baby eight village meet root buy
raise solve metal whether push seven paragraph third shall held hair describe cook floor either result burn hill safe
cat century consider type law bit coast copy phrase silent tall sand soil roll temperature finger industry value
fight lie beat excite natural view sense ear else quite broke case middle kill son lake moment scale loud spring
observe child straight consonant nation dictionary milk speed method organ pay age section dress cloud surprise quiet
stone tiny climb cool design poor lot experiment bottom key iron single stick flat twenty skin smile crease hole trade
melody trip office receive row mouth exact symbol die least trouble shout except wrote seed tone join suggest clean
break lady yard rise bad blow oil blood touch grew cent mix team wire cost lost brown wear garden equal sent choose
fell fit flow fair bank collect save control decimal gentle woman captain practice separate difficult doctor please
protect noon whose locate ring character insect caught period indicate radio spoke atom human history effect electric
expect crop modern element hit student corner party supply bone rail imagine provide agree thus capital chair danger
fruit rich thick soldier process operate guess necessary sharp wing create neighbor wash bat rather crowd corn compare
poem string bell depend meat rub tube famous dollar stream fear sight thin triangle planet hurry chief colony clock
mine tie enter major fresh search send yellow gun allow print dead spot desert suit current lift rose continue block
chart hat sell success company subtract event particular deal swim term opposite wife shoe shoulder spread arrange
camp invent cotton born determine quart nine truck noise level chance gather shop stretch throw shine property column
molecule select wrong gray repeat require broad prepare salt nose plural anger claim continent oxygen sugar death
pretty skill women season solution magnet silver thank branch match suffix especially fig afraid huge sister steel
discuss forward similar guide experience score apple bought led pitch coat mass card band rope slip win dream evening
condition feed tool total basic smell valley nor double seat arrive master track parent shore division sheet
substance favor connect post spend chord fat glad original share station dad bread charge proper bar offer segment
slave duck instant market degree populate chick dear enemy reply drink occur support speech nature range steam motion
path liquid log meant quotient teeth shell neck""".split()
SYSTEMS = ["You are a helpful assistant.", "You are a concise support agent for a bicycle shop. Answer briefly.",
           "You answer questions about cooking and always mention one safety tip."]
PERSONAL = ["write to sam.jones@example.org", "call +44 20 7946 0958", "the server is at 10.20.30.40"]


def generate(path: Path, size_mb: int, seed: int = 0) -> int:
    """Writes about size_mb of chat JSONL to path; returns the number of examples."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    pool = rng.choices(WORDS, weights=weights, k=2_000_000)  # Zipf-like word frequencies, drawn once

    def sentence(words: int) -> str:
        start = rng.randrange(len(pool) - words)
        text = " ".join(pool[start:start + words])
        if rng.random() < 0.2:
            text += f" {rng.randint(2, 9999)}"
        return text[0].upper() + text[1:] + rng.choice(".!?.")

    def paragraph(words: int) -> str:
        parts, left = [], words
        while left > 0:
            n = min(left, rng.randint(6, 24))
            parts.append(sentence(n))
            left -= n
        return " ".join(parts)

    earlier: list[dict] = []
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size_mb * 1_000_000:
            roll = rng.random()
            if earlier and roll < 0.02:
                record = rng.choice(earlier)
            elif earlier and roll < 0.03:
                record = json.loads(json.dumps(rng.choice(earlier)))
                answer = record["messages"][-1]
                words = answer["content"].split(" ")
                words[rng.randrange(len(words))] = "changed"
                answer["content"] = " ".join(words)
            else:
                messages = [{"role": "system", "content": rng.choice(SYSTEMS)}] if rng.random() < 0.3 else []
                for _ in range(rng.choice((1, 1, 1, 2, 3))):
                    messages.append({"role": "user", "content": paragraph(rng.randint(8, 60))})
                    messages.append({"role": "assistant", "content": paragraph(rng.randint(20, 260))})
                if rng.random() < 0.01:
                    messages[-1]["content"] += " " + rng.choice(PERSONAL)
                record = {"messages": messages}
                if len(earlier) < 5000:
                    earlier.append(record)
                elif rng.random() < 0.01:
                    earlier[rng.randrange(len(earlier))] = record
            line = json.dumps(record) + "\n"
            out.write(line)
            written += len(line.encode())
            count += 1
    return count


def read_jsonl(path: Path) -> Iterator:
    """The simplest lenient reader: one record a line as an Example, anything unreadable as a Problem."""
    from honed.data.example import Example, Message, Problem

    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                yield Example(tuple(Message(m["role"], m["content"]) for m in record["messages"]), number)
            except (ValueError, KeyError, TypeError) as error:
                yield Problem(number, f"not a chat record: {error}")


def tokenizer_dir(choice: str, scratch: Path) -> tuple[str, Path]:
    """A tokenizer directory prepared in a child process, so its one-off loading (torch, a GGUF file) does not
    count toward this process's peak RSS."""
    if choice in ("auto", "smollm2"):
        from honed.models.catalog import SMOLLM2_ID, ModelCatalog, NotFound

        try:
            source = ModelCatalog(scratch / "models").resolve(SMOLLM2_ID)
        except NotFound:
            if choice == "smollm2":
                raise
        else:
            target = scratch / "smollm2-tokenizer"
            if source.kind == "bundled":
                gguf = Path(source.location)
                code = ("import sys; from transformers import AutoTokenizer; AutoTokenizer.from_pretrained("
                        "sys.argv[1], gguf_file=sys.argv[2]).save_pretrained(sys.argv[3])")
                subprocess.run([sys.executable, "-c", code, str(gguf.parent), gguf.name, str(target)], check=True)
                return "SmolLM2-135M-Instruct", target
            return "SmolLM2-135M-Instruct", Path(source.location)
    target = scratch / "tiny"
    subprocess.run([sys.executable, "-m", "honed.models.tiny", str(target)], check=True)
    return "tiny", target


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--tokenizer", choices=("auto", "smollm2", "tiny"), default="auto")
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # the child process that writes the file
    args = parser.parse_args()
    if args.generate:
        print(generate(args.generate, args.size_mb))
        return

    with tempfile.TemporaryDirectory(prefix="honed-bench-") as scratch:
        data = Path(scratch) / "train.jsonl"
        started = time.perf_counter()
        # In a child process, like the tokenizer below: this process's peak RSS is the analysis alone.
        count = int(subprocess.run([sys.executable, __file__, "--generate", str(data), "--size-mb", str(args.size_mb)],
                                   check=True, capture_output=True, text=True).stdout)
        generated_s = time.perf_counter() - started
        name, directory = tokenizer_dir(args.tokenizer, Path(scratch))

        from transformers import AutoTokenizer

        from honed.data.analysis import analyze

        tokenizer = AutoTokenizer.from_pretrained(directory)
        rss_before = rss_mb()
        started = time.perf_counter()
        report = analyze(read_jsonl(data), tokenizer=tokenizer, max_seq_len=args.max_seq_len)
        wall = time.perf_counter() - started
        rss_peak = rss_mb()
        size = data.stat().st_size

    result = {
        "tokenizer": name, "file_mb": round(size / 1e6, 1), "examples": report.examples,
        "generated_examples": count, "generate_s": round(generated_s, 1), "wall_s": round(wall, 1),
        "examples_per_s": round(report.examples / wall), "mb_per_s": round(size / 1e6 / wall, 2),
        "rss_before_analysis_mb": round(rss_before), "rss_peak_mb": round(rss_peak),
        "rss_growth_mb": round(rss_peak - rss_before), "rss_target_mb": RSS_TARGET_MB, "time_target_s": TIME_TARGET_S,
        "findings": {f.code: f.count for f in report.findings},
        "tokens": {"p50": report.tokens.p50, "p99": report.tokens.p99, "max": report.tokens.max,
                   "over_max": report.tokens.over_max} if report.tokens else None,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key != "machine":
            print(f"{key:<{width}}  {value}")
    print(f"peak RSS {rss_peak:.0f} MB (target < {RSS_TARGET_MB} MB): {'ok' if rss_peak < RSS_TARGET_MB else 'OVER'}; "
          f"wall {wall:.0f} s (target < {TIME_TARGET_S} s): {'ok' if wall < TIME_TARGET_S else 'OVER'}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data-analysis.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
