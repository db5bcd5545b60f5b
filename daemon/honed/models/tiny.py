"""A tiny, seeded Llama-architecture causal LM for fast unit tests.

The model is random (it answers nonsense) but it is a real Hugging Face directory: a byte-level BPE
tokenizer trained here with `tokenizers`, a ChatML chat template like SmolLM2-Instruct's, and a
~3.7M-parameter `LlamaForCausalLM`. Anything that loads SmolLM2 from a directory loads this too, in
well under a second, so engine, job and API tests can run the real code paths on two CPU cores.

    python -m honed.models.tiny PATH [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import tempfile

# Bump when anything below changes what gets written, so old cached builds are rebuilt, not reused.
BUILDER_VERSION = 2
MARKER_FILE = "honed-tiny.json"

VOCAB_SIZE = 2048
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Listed first so the trainer gives them ids 0, 1, 2, as in SmolLM2.
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# SmolLM2-Instruct's template without its default system prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Fixed, not derived from the build seed: the seed varies the weights only, so every tiny model
# shares one tokenizer and token ids mean the same thing across seeds.
CORPUS_SEED = 20240601

COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "black", "white", "grey", "pink", "brown",
           "golden", "silver", "violet", "crimson", "turquoise"]
THINGS = ["sky", "sea", "grass", "banana", "apple", "car", "house", "door", "cat", "dog", "book", "cup",
          "chair", "table", "flower", "bird", "shirt", "hat", "train", "boat", "lamp", "window", "bicycle",
          "umbrella", "pencil", "kettle", "blanket", "carpet", "bottle", "guitar", "ladder", "bucket",
          "pamplemousse", "quokka"]
ANIMALS = ["cats", "dogs", "birds", "horses", "cows", "sheep", "fish", "ducks", "rabbits", "goats",
           "elephants", "giraffes", "penguins", "dolphins", "foxes", "owls", "tortoises", "quokkas"]
PLACES = ["garden", "park", "field", "kitchen", "river", "forest", "school", "market", "zoo", "village",
          "library", "harbour", "mountain", "desert", "station", "museum", "bakery", "hospital"]
CAPITALS = {"France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Japan": "Tokyo",
            "Kenya": "Nairobi", "Peru": "Lima", "Egypt": "Cairo", "Canada": "Ottawa", "Norway": "Oslo",
            "Tanzania": "Dodoma", "Portugal": "Lisbon", "Greece": "Athens", "Chile": "Santiago",
            "Sweden": "Stockholm", "Poland": "Warsaw", "Mexico": "Mexico City", "Brazil": "Brasilia",
            "India": "New Delhi", "China": "Beijing", "Australia": "Canberra", "Argentina": "Buenos Aires",
            "Ireland": "Dublin", "Austria": "Vienna", "Hungary": "Budapest", "Morocco": "Rabat",
            "Vietnam": "Hanoi", "Thailand": "Bangkok", "Ghana": "Accra", "Finland": "Helsinki"}
CITIES = ["London", "Zanzibar", "Sydney", "Mumbai", "Boston", "Dublin", "Vienna", "Nairobi", "Lagos",
          "Toronto", "Seoul", "Prague", "Quito", "Perth", "Chicago", "Marseille", "Barcelona", "Glasgow",
          "Osaka", "Istanbul", "Copenhagen", "Edinburgh", "Melbourne", "Vancouver", "Lyon", "Naples"]
FOODS = ["bread", "rice", "soup", "cheese", "pasta", "honey", "tea", "coffee", "cake", "noodles", "pizza",
         "salad", "oranges", "strawberries", "chocolate", "porridge", "lemonade", "dumplings", "pamplemousse"]
NAMES = ["Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kate", "Liam",
         "Maria", "Noah", "Olivia", "Pablo", "Rosa", "Samir", "Tara", "Victor", "Wendy", "Yusuf", "Zoe"]
JOBS = ["teacher", "doctor", "farmer", "baker", "pilot", "nurse", "painter", "engineer", "gardener",
        "musician", "carpenter", "librarian", "fisherman", "scientist", "journalist", "plumber"]
VERBS = ["painted", "carried", "cleaned", "opened", "borrowed", "found", "repaired", "washed", "bought",
         "sold", "dropped", "watched", "remembered", "forgot", "delivered", "measured"]
ADJECTIVES = ["small", "large", "quiet", "noisy", "happy", "sleepy", "clever", "gentle", "ancient",
              "shiny", "heavy", "wooden", "beautiful", "friendly", "curious", "careful"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "cold", "warm", "hot", "snowy", "foggy", "stormy"]
HOBBIES = ["swimming", "cooking", "reading", "dancing", "knitting", "climbing", "singing", "fishing",
           "drawing", "running", "skiing", "gardening", "photography", "chess", "sailing", "juggling",
           "astronomy", "pottery", "cycling", "birdwatching"]
SUBJECTS = ["history", "geography", "mathematics", "chemistry", "physics", "biology", "literature",
            "philosophy", "economics", "music", "languages", "medicine", "architecture", "psychology"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "twenty", "thirty", "hundred", "thousand"]

TEMPLATES = [
    "What colour is the {thing}? The {thing} is {colour}.",
    "How many {animals} are in the {place}? There are {number} {animals} in the {place}.",
    "What is the capital of {country}? The capital of {country} is {capital}.",
    "What is {x} plus {y}? {x} plus {y} is {sum}.",
    "Where does {name} live? {name} lives in {city}.",
    "What does {name} do? {name} is a {adjective} {job} in {city}.",
    "Do you like {food}? Yes, I like {food} very much.",
    "What is the weather on {day}? On {day} it is {weather}.",
    "When was {name} born? {name} was born in {month} {year}.",
    "{name} ate {food} in {city} on {day}.",
    "What does {name} enjoy? {name} enjoys {hobby} on {day} mornings.",
    "Which subject does the {job} teach? The {job} teaches {subject} at the {place}.",
    "Yesterday the {job} {verb} a {adjective} {thing} near the {place}.",
    "Why are the {animals} so {adjective}? Because it is {weather} in {month}.",
    "The {animals} in Zanzibar are {colour} and {adjective}.",
    "{name} honed the model until it answered well.",
    "Can a quokka eat a pamplemousse? Maybe, if it is {weather} in {city}.",
]


def _corpus_sentences(count: int = 6000) -> list[str]:
    """Short question/answer sentences about everyday things, the same list on every call."""
    rng = random.Random(CORPUS_SEED)
    sentences = []
    for _ in range(count):
        country = rng.choice(sorted(CAPITALS))
        # Sums and years are many distinct numbers; they fill the vocabulary up to VOCAB_SIZE.
        x, y = rng.randrange(1000), rng.randrange(1000)
        slots = {
            "thing": rng.choice(THINGS), "colour": rng.choice(COLOURS), "animals": rng.choice(ANIMALS),
            "place": rng.choice(PLACES), "number": rng.choice(NUMBER_WORDS), "country": country,
            "capital": CAPITALS[country], "x": x, "y": y, "sum": x + y, "name": rng.choice(NAMES),
            "city": rng.choice(CITIES), "food": rng.choice(FOODS), "day": rng.choice(DAYS),
            "weather": rng.choice(WEATHER), "job": rng.choice(JOBS), "verb": rng.choice(VERBS),
            "adjective": rng.choice(ADJECTIVES), "month": rng.choice(MONTHS), "year": rng.randrange(1900, 2025),
            "hobby": rng.choice(HOBBIES), "subject": rng.choice(SUBJECTS),
        }
        sentences.append(rng.choice(TEMPLATES).format(**slots))
    return sentences


def _train_tokenizer():
    """Train a byte-level BPE tokenizer on the built-in corpus and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # Byte-level with the full 256-byte alphabet: any UTF-8 text encodes, so no unk token is needed.
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus_sentences(), trainer=trainer)

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        # A pad distinct from eos: collators that mask pad labels must not also mask the real <|im_end|>.
        pad_token=ENDOFTEXT,
        extra_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
        # The default cleanup rewrites " ," and " 's"; off, so decode(encode(text)) == text.
        clean_up_tokenization_spaces=False,
    )


def _save_tokenizer(tokenizer, directory: pathlib.Path) -> None:
    # transformers 5 puts the template in chat_template.jinja and writes no special_tokens_map.json;
    # the legacy layout is what older transformers, mlx-lm and llama.cpp's converter all read.
    tokenizer.save_pretrained(directory, save_jinja_files=False)
    (directory / "special_tokens_map.json").write_text(
        json.dumps(tokenizer.special_tokens_map, indent=2, sort_keys=True) + "\n"
    )


def _save_model(tokenizer, directory: pathlib.Path, seed: int) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=768,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
        # Wider than Llama's 0.02: with tied embeddings that small, the random model's logits are nearly flat
        # and no adapter can move them far, so tests could not see the loss fall.
        initializer_range=0.1,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(directory, safe_serialization=True)

    # transformers 5 writes only `rope_parameters`; mlx-lm reads the top-level key (see DESIGN.md).
    config_path = directory / "config.json"
    saved = json.loads(config_path.read_text())
    if "rope_theta" not in saved:
        saved["rope_theta"] = config.rope_parameters["rope_theta"]
        config_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


def _marker(seed: int) -> dict:
    return {"builder": "honed.models.tiny", "version": BUILDER_VERSION, "seed": seed}


def _is_built(path: pathlib.Path, seed: int) -> bool:
    try:
        return json.loads((path / MARKER_FILE).read_text()) == _marker(seed)
    except (OSError, ValueError):
        return False


def build_tiny_model(path: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Build the tiny model at `path` and return `path`.

    If `path` already holds a complete build with the same seed and builder version, it is reused
    untouched. Same seed, same bytes: model.safetensors and tokenizer.json are byte-identical across
    builds. The build happens in a temporary directory beside `path` and is moved into place whole,
    so a crash never leaves a directory that looks built.

    Raises FileExistsError if `path` is a non-empty directory that this function did not build:
    it will not delete something it did not make.
    """
    path = pathlib.Path(path)
    if _is_built(path, seed):
        return path
    if path.exists() and not (path / MARKER_FILE).exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} is not empty and holds no tiny model; pass a new or empty directory")

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.building-", dir=path.parent))
    staging.chmod(0o755)  # mkdtemp makes it 0700; the built model is meant to be shared, not private
    try:
        tokenizer = _train_tokenizer()
        _save_tokenizer(tokenizer, staging)
        _save_model(tokenizer, staging, seed)
        # Written last: its presence is what marks a build complete.
        (staging / MARKER_FILE).write_text(json.dumps(_marker(seed)) + "\n")
        _move_into_place(staging, path, seed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _move_into_place(staging: pathlib.Path, path: pathlib.Path, seed: int) -> None:
    # os.replace cannot overwrite a non-empty directory, so a stale build (other seed or version)
    # is first renamed aside; the window where `path` is missing is harmless, never half-written.
    if path.exists():
        stale = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.stale-", dir=path.parent))
        os.replace(path, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, path)
    except OSError:
        # Another process building the same model got there first; its build is as good as ours.
        if not _is_built(path, seed):
            raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m honed.models.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=pathlib.Path, help="directory to build into (reused if already built)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    args = parser.parse_args(argv)
    print(build_tiny_model(args.path, seed=args.seed))


if __name__ == "__main__":
    main()
