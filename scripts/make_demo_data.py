"""Write the demo's dataset: support answers for a fictional product that no base model can know.

Seeded and deterministic. Training questions and held-out questions are different phrasings, so the demo's
score measures whether the model learned the facts, not whether it memorised the training lines.
Licence: written for honed, Apache-2.0 like the project.

    python scripts/make_demo_data.py   # rewrites client/hone/demo/*.json*
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "You are the support assistant for the Aurora smart kettle by Northwind."
OUT = Path(__file__).resolve().parent.parent / "client" / "hone" / "demo"

# topic -> (answer, keywords the answer must contain, training phrasings, held-out phrasings)
FACTS = {
    "warranty": (
        "The Aurora kettle has a 3-year warranty. Register it at northwind.example/aurora to activate it.",
        ["3-year"],
        ["How long is the warranty?", "What warranty does the Aurora have?", "Is the kettle under warranty?",
         "How many years of warranty do I get?", "Tell me about the warranty.", "What is the warranty period?",
         "Does the Aurora come with a guarantee?", "warranty length?", "How long am I covered if it breaks?",
         "What's the warranty on this kettle?"],
        ["For how long is my Aurora covered by warranty?", "what kind of guarantee comes with the kettle"],
    ),
    "reset": (
        "To reset the Aurora, hold the power button for 10 seconds until the ring blinks blue.",
        ["10 seconds"],
        ["How do I reset the kettle?", "How can I factory reset my Aurora?", "The kettle is stuck, how do I reset it?",
         "What is the reset procedure?", "reset instructions please", "How do I restart the Aurora from scratch?",
         "My kettle froze. How do I reset it?", "How to do a hard reset?", "Can I reset the Aurora?",
         "What do I press to reset it?"],
        ["My Aurora stopped responding, what should I do to reset it?", "how do i wipe the kettle back to factory state"],
    ),
    "email": (
        "You can reach Northwind support at help@northwind.example, every day from 8am to 8pm.",
        ["help@northwind.example"],
        ["How do I contact support?", "What is the support email?", "Who do I email for help?",
         "How can I reach customer service?", "support contact?", "I need to talk to someone at Northwind.",
         "Where do I send a complaint?", "What's your email address?", "How do I get in touch with you?",
         "Is there an email for support?"],
        ["What address should I write to if I need help with my kettle?", "how can i contact northwind"],
    ),
    "temperature": (
        "The Aurora heats water from 40°C to 100°C in steps of 5 degrees; set it in the Northwind app.",
        ["40°C"],
        ["What temperatures can it heat to?", "Can I set the water temperature?", "What is the lowest temperature?",
         "Does the Aurora have temperature control?", "temperature range?", "Can it keep water at 80 degrees?",
         "How hot can the kettle get?", "Can I choose how hot the water is?", "What temperature settings are there?",
         "How do I change the temperature?"],
        ["Which water temperatures does the Aurora support?", "is it possible to heat water to only 60 degrees"],
    ),
    "capacity": (
        "The Aurora holds 1.7 litres; the minimum fill line is 0.5 litres.",
        ["1.7 litres"],
        ["How much water does it hold?", "What is the capacity?", "How big is the kettle?",
         "How many litres fit in the Aurora?", "capacity?", "What's the maximum fill?",
         "How much water can I boil at once?", "Is it a large kettle?", "What volume does it have?",
         "How many cups can it make?"],
        ["What is the maximum amount of water the Aurora can boil?", "how many liters does the kettle take"],
    ),
    "descale": (
        "Descale the Aurora every 4 weeks with a mix of water and white vinegar, then rinse twice.",
        ["4 weeks"],
        ["How do I descale the kettle?", "How often should I descale?", "There is limescale inside, what do I do?",
         "How do I clean the inside?", "descaling instructions?", "What should I use to remove limescale?",
         "How do I maintain the kettle?", "The water tastes chalky, what now?", "How do I clean scale off?",
         "Do I need to descale it?"],
        ["What is the right way to get rid of limescale in my Aurora?", "how frequently do i need to descale it"],
    ),
}


def main(seed: int = 7) -> None:
    rng = random.Random(seed)
    train = []
    for answer, _, phrasings, _ in FACTS.values():
        for question in phrasings:
            train.append({"messages": [{"role": "system", "content": SYSTEM},
                                       {"role": "user", "content": question},
                                       {"role": "assistant", "content": answer}]})
    rng.shuffle(train)
    # an honed eval suite: the job scores the base model on it before training and the tuned model after
    suite = {"name": "aurora-support-heldout", "system": SYSTEM, "metrics": ["contains_all"], "max_tokens": 48,
             "cases": [{"prompt": question, "keywords": keywords}
                       for _, (_, keywords, _, questions) in FACTS.items() for question in questions]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "aurora-train.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in train))
    (OUT / "aurora-heldout.json").write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n")
    print(f"{len(train)} training examples, {len(suite['cases'])} held-out prompts -> {OUT}")


if __name__ == "__main__":
    main()
