"""The creative-writing recipe's data: short pieces in the house voice of "The Harbour Log", on new prompts.

The house style has five traits a machine can check: (1) second person, present tense ("You ..."); (2) short
sentences, never more than ten words; (3) nautical images (tide, keel, helm, harbour, anchor ...); (4) it opens
on the weather or the light; (5) it always ends with the sign-off "Steady as she goes." Each prompt asks for a
piece about an everyday activity in a setting ("baking bread on a rainy morning"); the pieces are put together
from ACTIVITIES, SETTINGS and NAUTICAL lines with random.Random(SEED), so the files are the same bytes on every
machine. The test split's activities never occur in train or validation: every test prompt is about something
the model was never shown in the house voice.

The style_classifier metric needs a classifier that tells the house voice from plain prose: `train_classifier`
fits a logistic regression (numpy, plain gradient descent) on all-MiniLM-L6-v2 embeddings of the TRAIN split's
pieces against plain pieces on the same train topics (`plain_piece`: long past-tense reminiscence, a chatty
assistant's story, the house sentences retold in the first or third person, or looping), and writes its weights
to style_classifier.json.

    python recipes/creative-writing/generate.py              # data/{train,validation,test}.jsonl + classifier
    python recipes/creative-writing/generate.py --data-only  # the data files only (standard library only)

Licence: the generated data and the classifier weights are dedicated to the public domain (CC0 1.0).
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

SEED = 8403
SIZES = {"train": 250, "validation": 30, "test": 200}
SYSTEM = "You are the narrator of The Harbour Log."
SIGN_OFF = "Steady as she goes."
TEST_ACTIVITIES = 12  # the last ones in ACTIVITIES: held out for the test split
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Activity:
    name: str
    """As the prompt says it: "baking bread"."""
    arrive: str
    act: str
    thing: str
    """What the piece's metaphor is about, as a sentence subject: "The dough"."""
    sense: str
    close: str


@dataclass(frozen=True)
class Setting:
    phrase: str
    """As the prompt says it: "on a rainy morning"."""
    openings: tuple[str, ...]


ACTIVITIES: tuple[Activity, ...] = (
    Activity("baking bread", "You step into the warm kitchen.", "You knead the dough slowly.", "The dough",
             "Yeast and flour fill the air.", "The loaf cools on the rack."),
    Activity("walking the dog", "You clip the lead on.", "You follow the dog down the lane.", "The lead",
             "Wet grass brushes your boots.", "The dog curls up by the door."),
    Activity("reading in bed", "You pull the blanket up.", "You turn the pages one by one.", "The book",
             "The lamp hums beside you.", "You fold the corner of the page."),
    Activity("planting tomatoes", "You kneel by the garden bed.", "You press each seedling into the soil.",
             "The trowel", "The soil smells of rain.", "The rows stand green and small."),
    Activity("fixing a bicycle", "You flip the bike over.", "You tighten the loose chain.", "The wrench",
             "Oil darkens your fingers.", "The wheel spins clean and true."),
    Activity("painting a fence", "You open the tin of paint.", "You draw the brush along each board.",
             "The brush", "Fresh paint sharpens the air.", "The fence shines white."),
    Activity("making soup", "You set the big pot down.", "You chop onions and carrots.", "The pot",
             "Steam rises from the stove.", "You ladle out the first bowl."),
    Activity("waiting for a train", "You stand on the platform.", "You check the board again.", "The platform",
             "Brakes squeal somewhere down the line.", "The train pulls in at last."),
    Activity("writing a letter", "You sit at the small desk.", "You write the first line twice.", "The pen",
             "Ink smudges the edge of your hand.", "You seal the envelope."),
    Activity("cleaning the windows", "You fill a bucket with warm water.", "You wipe each pane in circles.",
             "The cloth", "Soap bubbles pop on the sill.", "The glass lets the light in."),
    Activity("learning to swim", "You step into the shallow end.", "You kick and reach forward.", "The water",
             "Chlorine stings your nose.", "You float, just for a moment."),
    Activity("moving house", "You carry the first box out.", "You stack the boxes by the door.", "The last box",
             "Dust hangs in the empty rooms.", "You lock the old door once more."),
    Activity("knitting a scarf", "You settle into the armchair.", "You loop the wool row by row.", "The wool",
             "The needles click softly.", "The scarf hangs long and warm."),
    Activity("climbing a hill", "You start up the narrow path.", "You climb one step at a time.", "The path",
             "Your breath comes short and fast.", "The whole valley opens below."),
    Activity("feeding the birds", "You carry seed to the feeder.", "You scatter crumbs on the lawn.",
             "The feeder", "Wings flutter in the hedge.", "A robin lands close by."),
    Activity("making coffee", "You shuffle into the kitchen.", "You grind the beans by hand.", "The kettle",
             "The smell of coffee wakes you.", "You wrap your hands round the mug."),
    Activity("sorting old photos", "You open the shoebox of photos.", "You lay the pictures in rows.",
             "The shoebox", "Old paper smells faintly sweet.", "You keep one photo out."),
    Activity("building a sandcastle", "You kneel on the damp sand.", "You pack the bucket tight.", "The bucket",
             "Gulls cry above you.", "The castle stands, small and proud."),
    Activity("studying for an exam", "You clear the desk.", "You read your notes aloud.", "The notebook",
             "The clock ticks on the wall.", "You close the book, ready."),
    Activity("watering the garden", "You uncoil the green hose.", "You water each bed in turn.", "The hose",
             "Drops shine on the leaves.", "The garden drinks its fill."),
    Activity("mending a shirt", "You thread the needle.", "You stitch the torn seam.", "The needle",
             "Cotton dust drifts in the lamplight.", "The shirt is whole again."),
    Activity("teaching a child to read", "You sit beside the child.", "You point to each word.", "The page",
             "A small voice sounds out the letters.", "The child reads the last line alone."),
    Activity("running in the park", "You lace your shoes tight.", "You run the long loop twice.", "The track",
             "Your heart drums in your chest.", "You slow to a walk by the gate."),
    Activity("cooking for friends", "You lay the long table.", "You stir the sauce and taste it.", "The pan",
             "Garlic sizzles in the oil.", "Your friends pass the plates around."),
    Activity("playing the piano", "You lift the piano lid.", "You play the scale slowly.", "The old piano",
             "A low note hangs in the room.", "You let the last chord ring."),
    Activity("picking apples", "You carry the basket to the orchard.", "You twist each apple free.",
             "The basket", "Sweet fruit scents the air.", "The basket sits full and heavy."),
    Activity("washing the car", "You fill the bucket at the tap.", "You sponge the roof and doors.", "The sponge",
             "Suds run down the drive.", "The car gleams in the drive."),
    Activity("visiting a grandparent", "You knock on the blue door.", "You sit and listen to old stories.",
             "The teapot", "The room smells of lavender.", "You promise to come back soon."),
    # The test split's activities, never seen in training.
    Activity("making pancakes", "You tie on your apron.", "You flip the first pancake.", "The pan",
             "Butter bubbles and browns.", "The stack grows tall on the plate."),
    Activity("flying a kite", "You walk to the top of the field.", "You let the string run out.", "The kite",
             "The string hums in your hands.", "You reel the kite back down."),
    Activity("repairing a roof", "You climb the ladder.", "You nail the loose tiles down.", "The ladder",
             "Tar warms in the sun.", "The roof is tight again."),
    Activity("learning to drive", "You slide into the driver's seat.", "You check the mirrors twice.",
             "The wheel", "The engine purrs beneath you.", "You park, a little crooked."),
    Activity("camping in the woods", "You pitch the small tent.", "You build a careful fire.", "The tent",
             "Pine smoke drifts between the trees.", "You zip the tent shut."),
    Activity("decorating a cake", "You set the cake on a stand.", "You pipe the icing in swirls.",
             "The icing", "Sugar dusts the counter.", "You place the last cherry on top."),
    Activity("shopping at a market", "You weave between the stalls.", "You pick the ripest pears.", "The market",
             "Vendors call out their prices.", "Your bag hangs heavy on your arm."),
    Activity("fishing at a lake", "You walk down to the jetty.", "You cast the line out.", "The line",
             "Reeds rustle by the shore.", "You let the small fish go."),
    Activity("sweeping the yard", "You take the old broom down.", "You sweep the leaves into piles.",
             "The broom", "Dry leaves crackle underfoot.", "The yard lies clean and bare."),
    Activity("practising the violin", "You tune the strings.", "You draw the bow slowly.", "The bow",
             "A thin note wavers and holds.", "You loosen the bow and rest."),
    Activity("stacking firewood", "You haul the logs from the shed.", "You stack them log by log.",
             "The woodpile", "Sawdust clings to your sleeves.", "The woodpile stands square and dry."),
    Activity("writing a poem", "You open a clean notebook.", "You cross out a line and try again.",
             "The notebook", "The pencil scratches softly.", "You read the poem once, aloud."),
)

SETTINGS: tuple[Setting, ...] = (
    Setting("on a rainy morning", ("Rain taps the glass.", "Grey clouds sit low.")),
    Setting("at dawn", ("First light creeps in.", "The sky turns pale gold.")),
    Setting("late at night", ("The house is dark.", "Stars prick the black sky.")),
    Setting("in the first snow", ("Snow falls without a sound.", "White covers every roof.")),
    Setting("on a hot afternoon", ("The sun beats down.", "Heat shimmers on the road.")),
    Setting("after a long week", ("Evening light is soft and low.", "The week drains away.")),
    Setting("on a windy evening", ("Wind rattles the gate.", "The trees bend and sigh.")),
    Setting("before sunrise", ("The world is still dark.", "A thin light waits in the east.")),
    Setting("on a quiet Sunday", ("The street is silent.", "Church bells ring far off.")),
    Setting("in early spring", ("Green buds show on the branches.", "The air is cool and new.")),
    Setting("during a storm", ("Thunder rolls overhead.", "Rain lashes the windows.")),
    Setting("on a foggy day", ("Fog hides the street.", "Everything is soft and grey.")),
    Setting("at the end of summer", ("The light turns amber.", "The days grow shorter.")),
    Setting("on a cold winter night", ("Frost creeps up the glass.", "The wind is sharp and thin.")),
    Setting("in the autumn rain", ("Leaves drift down in the rain.", "Wet leaves gleam on the path.")),
    Setting("on a bright clear morning", ("The sky is clean and blue.", "Sunlight spills across the floor.")),
    Setting("on your birthday", ("The morning feels new.", "Cards wait on the table.")),
    Setting("on the first day of the holidays", ("No alarm rings today.", "The day stretches out ahead.")),
    Setting("under a full moon", ("The moon hangs white and round.", "Silver light fills the yard.")),
    Setting("on a muggy summer evening", ("The air is thick and warm.", "Insects drone in the dusk.")),
)

METAPHORS = ("{thing} is your ballast.", "{thing} is your anchor.", "{thing} is your compass.",
             "{thing} rides like a small boat.", "{thing} is your cargo now.", "{thing} steadies you like a keel.",
             "{thing} is your harbour.")
NAUTICAL = ("You hold your course.", "The tide turns your way.", "You trim your sails.", "The wind is at your back.",
            "Calm water lies ahead.", "You keep an even keel.", "You take the helm.", "Every knot holds.",
            "The swell settles.", "You read the sky like a chart.", "Your compass points true.",
            "You drop anchor for a moment.", "The harbour lights blink.")
PHRASINGS = ("Write a short piece about {topic}.", "Describe {topic}.", "Tell me about {topic}.",
             "A few lines on {topic}, please.", "Write about {topic}.", "Write a short scene: {topic}.")


def house_piece(rng: random.Random, activity: Activity, setting: Setting) -> str:
    """A piece in the house voice: weather or light first, short second-person sentences, two nautical lines,
    the sign-off last."""
    first, second = rng.sample(NAUTICAL, 2)
    middle = [activity.act, rng.choice(METAPHORS).format(thing=activity.thing), first, activity.sense]
    if rng.random() < 0.5:
        middle[2], middle[3] = middle[3], middle[2]
    lines = [rng.choice(setting.openings), activity.arrive, *middle, second, activity.close, SIGN_OFF]
    return " ".join(lines)


# Plain prose on the same topics: the negatives the style classifier learns the house voice against. Some are
# far from it (long past-tense reminiscence, a chatty assistant's story), some close (the same short sentences in
# the first or third person; house sentences looping without the sign-off), so that the classifier has to look at
# more than sentence length and sea words.
PLAIN_OPENINGS = (
    "I still remember {topic}, and how the whole thing seemed to take much longer than I had expected.",
    "{Topic} can be a surprisingly rewarding experience, even for people who would not usually enjoy it.",
    "She had been looking forward to {topic} for weeks, although she could not quite explain why.",
    "When you think about {topic}, it is easy to forget how many small details make the experience special.",
    "The old sailor often talked about {topic}, back when the harbour was busy and the boats were still working.",
    "He decided that {topic} would be the perfect way to spend a few hours away from his busy job.",
)
PLAIN_MIDDLES = (
    "At first everything went smoothly, but after a while a few small problems started to appear.",
    "There was a calm, unhurried feeling about it that made the time pass quickly and pleasantly.",
    "Many people find that activities like this help them slow down and notice the world around them.",
    "The weather played its part as well, changing the mood of the day in ways that were hard to describe.",
    "It was not perfect, of course, and there were moments when it would have been easier to give up.",
    "Looking back, it was the quiet parts of the day that left the strongest impression on everyone involved.",
    "Friends and neighbours had often given advice about it, most of which turned out to be rather unhelpful.",
    "It reminded her of her childhood, when days seemed longer and there was always time for things like this.",
)
PLAIN_ENDINGS = (
    "In the end, it turned out to be one of the most memorable days of the whole year.",
    "Overall, it is a simple pleasure that more people should make time for in their daily lives.",
    "By the evening, everyone agreed that it had been well worth the effort.",
    "It was a small thing, but it made the rest of the week feel a little brighter.",
)
ASSISTANT_OPENINGS = ("Sure! Here's a short piece about {topic}:", "Here is a short story about {topic}.",
                      "Of course. A short scene about {topic}:", "Title: {Topic}")
STORY_LINES = (
    "Lena had always loved {topic}.", "Tom was not sure why, but {topic} always made him feel calm.",
    "The world seemed to slow down, and for a while nothing else mattered.",
    "She smiled, feeling grateful for the small moments that make life beautiful.",
    "As the hours passed, he realised how much he had needed this quiet time.",
    "It was the kind of day that stays in your memory long after it is over.",
    "Everything felt peaceful, and the worries of the week slowly faded away.",
)
PERSONS = {"she": ("She", "her", "her"), "I": ("I", "my", "me")}


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def retell(sentence: str, person: str) -> str:
    """A house sentence ("You knead the dough.") in the first or third person ("She kneads the dough.")."""
    subject, possessive, obj = PERSONS[person]
    words = sentence.split(" ")
    conjugate = person == "she" and words[0] == "You"
    out = []
    for index, word in enumerate(words):
        if word == "You" and index == 0:
            out.append(subject)
        elif word in ("your", "Your"):
            out.append(possessive if word == "your" else possessive.capitalize())
        elif word.rstrip(".") == "you":
            out.append(obj + word[3:])
        elif conjugate and (index == 1 or (words[index - 1] == "and" and word.isalpha())):  # not "and carrots."
            out.append(_third_person(word))
        else:
            out.append(word)
    return " ".join(out)


def plain_piece(rng: random.Random, activity: Activity, setting: Setting) -> str:
    """Prose about the same topic that is not in the house voice."""
    topic = f"{activity.name} {setting.phrase}"
    fill = {"topic": topic, "Topic": topic[0].upper() + topic[1:]}
    kind = rng.choice(("reminiscence", "reminiscence", "assistant", "retold", "retold", "loop"))
    if kind == "reminiscence":
        lines = [rng.choice(PLAIN_OPENINGS), *rng.sample(PLAIN_MIDDLES, 2), rng.choice(PLAIN_ENDINGS)]
        return " ".join(line.format(**fill) for line in lines)
    if kind == "assistant":
        story = " ".join(line.format(**fill) for line in rng.sample(STORY_LINES, 3))
        return f"{rng.choice(ASSISTANT_OPENINGS).format(**fill)}\n\n{story}"
    if kind == "loop":  # what a half-trained small model does: a house sentence or two, over and over
        lines = [rng.choice(setting.openings), *rng.sample([activity.act, activity.arrive, *NAUTICAL], 2) * 6]
        return " ".join(lines)
    person = rng.choice(sorted(PERSONS))
    lines = [rng.choice(setting.openings), activity.arrive, activity.act, activity.sense, activity.close]
    return " ".join(retell(line, person) for line in lines)


def draw(seed: int = SEED) -> dict[str, list[tuple[Activity, Setting, str, str]]]:
    """Per split, (activity, setting, prompt, house piece): test topics use the held-out activities only."""
    rng = random.Random(seed)
    trained, held_out = ACTIVITIES[:-TEST_ACTIVITIES], ACTIVITIES[-TEST_ACTIVITIES:]
    test_pairs = rng.sample([(a, s) for a in held_out for s in SETTINGS], SIZES["test"])
    train_pairs = rng.sample([(a, s) for a in trained for s in SETTINGS], SIZES["train"] + SIZES["validation"])
    drawn = {}
    for split, pairs in (("train", train_pairs[:SIZES["train"]]), ("validation", train_pairs[SIZES["train"]:]),
                         ("test", test_pairs)):
        drawn[split] = []
        for activity, setting in pairs:
            prompt = rng.choice(PHRASINGS).format(topic=f"{activity.name} {setting.phrase}")
            drawn[split].append((activity, setting, prompt, house_piece(rng, activity, setting)))
    return drawn


def build(seed: int = SEED) -> dict[str, list[dict]]:
    """The three splits as lists of records: chat examples for train and validation, eval cases (prompt and
    reference piece) for test."""
    splits = {}
    for split, drawn in draw(seed).items():
        if split == "test":
            splits[split] = [{"prompt": prompt, "reference": piece} for _, _, prompt, piece in drawn]
        else:
            splits[split] = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt},
                                           {"role": "assistant", "content": piece}]} for _, _, prompt, piece in drawn]
    return splits


def encode(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def classifier_texts(seed: int = SEED) -> tuple[list[str], list[str]]:
    """The style classifier's training texts, from the TRAIN split only: its house pieces, and one plain piece
    on each of its topics."""
    rng = random.Random(seed + 1)
    train = draw(seed)["train"]
    return [piece for _, _, _, piece in train], [plain_piece(rng, a, s) for a, s, _, _ in train]


def fit_logistic_regression(x, y, l2: float = 1e-3, steps: int = 3000, learning_rate: float = 2.0):
    """Weights and bias minimising the mean log-loss plus l2/2 * |w|^2, by full-batch gradient descent (the
    problem is convex and small: a few hundred 384-dimensional unit vectors)."""
    import numpy as np

    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w -= learning_rate * (x.T @ (p - y) / len(y) + l2 * w)
        b -= learning_rate * float(np.mean(p - y))
    return w, b


def train_classifier(path: Path = HERE / "style_classifier.json") -> float:
    """Fit the house-style classifier on the train split and write it as a StyleModel JSON; returns its
    training accuracy. Needs honed installed (the embedding model comes with it)."""
    import numpy as np

    from honed.evaluation.embedding import embed

    house, plain = classifier_texts()
    x = embed(house + plain).astype(np.float64)
    y = np.array([1.0] * len(house) + [0.0] * len(plain))
    w, b = fit_logistic_regression(x, y)
    accuracy = float(np.mean(((x @ w + b) > 0) == (y == 1)))
    model = {"weights": [round(float(v), 6) for v in w], "bias": round(b, 6), "embedding": "all-MiniLM-L6-v2"}
    path.write_text(json.dumps(model) + "\n")
    return accuracy


def main() -> None:
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    for name, records in build().items():
        (out / f"{name}.jsonl").write_bytes(encode(records))
        print(f"{name}: {len(records)} examples")
    if "--data-only" not in sys.argv[1:]:
        print(f"style classifier: {train_classifier():.1%} training accuracy")


if __name__ == "__main__":
    main()
