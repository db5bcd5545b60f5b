"""The customer-support recipe's data: support tickets for the Thermly T2, a smart thermostat that does not exist.

Each example is one customer message and the answer the support team wants: the intent label on the first line,
then the policy facts that answer it ("Intent: refund_request\n\nYou can return ..."). The policy handbook is
POLICIES below (and in README.md). Messages are put together from phrasings, slots (the device's name, an order
number, when it happened) and greetings/sign-offs, all drawn with random.Random(SEED), so the files are the same
bytes on every machine. No message appears in two splits, and two phrasings of each intent are kept for the test
split only, so part of the test asks in words that training never used.

    python recipes/customer-support/generate.py    # rewrites data/{train,validation,test}.jsonl

Licence: the generated data is dedicated to the public domain (CC0 1.0).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 8401
SIZES = {"train": 250, "validation": 30, "test": 200}  # balanced: the same count for every intent
SYSTEM = "You are Thermly's support assistant for the T2 thermostat. Give the intent, then the policy answer."
LABEL_PATTERN = r"Intent:\s*([a-z_]+)"


@dataclass(frozen=True)
class Intent:
    phrasings: tuple[str, ...]
    """Customer messages with {device}, {order} and {when} slots; the last two are kept for the test split."""
    answers: tuple[str, ...]
    """Policy-following answers (same facts, different words)."""
    keywords: tuple[str, ...]
    """The facts every good answer states (the contains_all metric)."""


POLICIES: dict[str, Intent] = {
    "refund_request": Intent(
        phrasings=(
            "I want to return {device} and get my money back.",
            "Can I get a refund for {device}? I bought it {when}.",
            "{device} isn't for me. How do I send it back for a refund?",
            "I'd like a refund on order {order}.",
            "What is your return policy? I'm not happy with {device}.",
            "How do I return {device}? It doesn't suit my home.",
            "I changed my mind about {device}, can I return it?",
            "Please refund order {order}, I no longer need the thermostat.",
            "Is it too late to return {device}? It arrived {when}.",
            "How long do refunds take to come back to my card?",
            "My partner already bought one, so I want to return {device} for my money back.",
            "I opened the box but never installed {device}. Can I still get a refund?",
        ),
        answers=(
            "You can return the T2 within 45 days of delivery for a full refund. Start the return in the app "
            "under Orders > Return; the refund reaches your original payment method within 5 business days.",
            "Returns are accepted within 45 days of delivery, opened or not. Request a return label in the app "
            "under Orders > Return, and you will get your money back within 5 business days of us receiving it.",
        ),
        keywords=("45 days", "5 business days"),
    ),
    "warranty_claim": Intent(
        phrasings=(
            "{device} stopped working after a few months. Is it under warranty?",
            "The screen on {device} went black. Can I get it replaced?",
            "How long is the warranty on {device}?",
            "{device} keeps rebooting by itself. What does the warranty cover?",
            "The dial on {device} is broken. I bought it {when}.",
            "My thermostat shows a hardware error. Can you replace it under warranty?",
            "Does the warranty cover {device} if the buttons stopped responding?",
            "I think {device} is defective, it reads the temperature 5 degrees too high.",
            "{device} makes a clicking noise and won't turn on the heating. Warranty?",
            "What do I need to file a warranty claim for {device}?",
            "The display on {device} flickers constantly. Is that a defect you cover?",
            "{device} died completely. Will you send me a new one?",
        ),
        answers=(
            "The T2 has a 3-year limited warranty covering defects in materials and workmanship. Send us the "
            "serial number from the back plate and a short description, and we ship a free replacement.",
            "Defects are covered by our 3-year limited warranty (damage from installation is not). Reply with the "
            "serial number printed on the back plate and we will send a replacement at no cost.",
        ),
        keywords=("3-year", "serial number"),
    ),
    "shipping_status": Intent(
        phrasings=(
            "Where is my order {order}?",
            "When will {device} arrive? I ordered it {when}.",
            "How long does shipping take?",
            "I haven't received order {order} yet. Can you check?",
            "Has my thermostat shipped? I ordered {when}.",
            "Is there a way to track order {order}?",
            "How fast is delivery? I need the thermostat before the weekend.",
            "My order {order} still says processing. When does it ship?",
            "Can I get faster shipping on {device}?",
            "What shipping options do you have?",
            "I ordered {device} {when} and there's no tracking number yet.",
            "Do you have express delivery for order {order}?",
        ),
        answers=(
            "Standard shipping takes 3-5 business days, and we email a tracking link as soon as your order ships. "
            "Express shipping (1-2 business days) is available for $12.",
            "Orders arrive in 3-5 business days with standard shipping. The tracking link is emailed when the "
            "parcel leaves our warehouse; express delivery takes 1-2 business days for $12.",
        ),
        keywords=("3-5 business days", "tracking"),
    ),
    "cancel_order": Intent(
        phrasings=(
            "Please cancel order {order}.",
            "I ordered {device} by mistake. Can I cancel?",
            "How do I cancel my order? I placed it {when}.",
            "Cancel my thermostat order please, I found it cheaper elsewhere.",
            "I placed order {order} twice by accident, can you cancel one?",
            "Is it possible to cancel order {order} before it ships?",
            "I don't want {device} anymore, please stop the order.",
            "Can I still cancel? I ordered {when}.",
            "I need to cancel my purchase of {device}.",
            "Oops, wrong model ordered. Cancel order {order}?",
            "Please call off my order for {device}, I no longer need it.",
            "Can you stop order {order}? I clicked buy too soon.",
        ),
        answers=(
            "Orders can be cancelled within 2 hours of being placed, from the Orders page in the app. After that "
            "the order is already packed: refuse the delivery or return it within 45 days for a full refund.",
            "You can cancel within 2 hours of ordering under Orders > Cancel in the app. Once those 2 hours have "
            "passed it cannot be cancelled, but you can return it within 45 days of delivery for a refund.",
        ),
        keywords=("2 hours",),
    ),
    "account_deletion": Intent(
        phrasings=(
            "How do I delete my Thermly account?",
            "Please delete my account and all my data.",
            "I want to close my account. What happens to my data?",
            "Can you remove my account? I sold {device}.",
            "How can I permanently erase my Thermly account?",
            "I'd like my personal data deleted from your servers.",
            "Delete my account please, I'm moving out and leaving {device} behind.",
            "What's the process to remove my account and history?",
            "I no longer use {device}. How do I delete the account linked to it?",
            "Is there a way to wipe my account and usage history?",
            "I want to stop using Thermly entirely and have my account removed.",
            "Please close my Thermly profile and erase what you store about me.",
        ),
        answers=(
            "You can delete your account in the app under Settings > Account > Delete account. Your data is "
            "erased within 30 days, and this cannot be undone; the thermostat keeps its last schedule offline.",
            "Go to Settings > Account > Delete account in the app. We erase your data within 30 days of the "
            "request, permanently, and the thermostat then runs on its last schedule without the cloud.",
        ),
        keywords=("Settings > Account", "30 days"),
    ),
    "subscription_billing": Intent(
        phrasings=(
            "How much does Thermly Plus cost?",
            "I was charged for Thermly Plus {when}. What is that?",
            "How do I cancel my Thermly Plus subscription?",
            "When am I billed for the Plus plan?",
            "Why is there a monthly charge from Thermly on my card?",
            "Can I stop paying for Plus and keep using {device}?",
            "Will I get a refund if I cancel Plus halfway through the month?",
            "What does the Plus subscription cost per month?",
            "I don't remember signing up for Plus. How do I end it?",
            "Which day of the month does the Plus charge happen?",
            "Is Thermly Plus billed monthly or yearly?",
            "There's a small recurring charge from Thermly. Can I turn it off?",
        ),
        answers=(
            "Thermly Plus costs $3 per month and is billed on the 1st of each month. You can cancel any time in "
            "the app under Plus > Manage; the current month is not refunded, and the T2 keeps working without it.",
            "The Plus plan is $3 a month, charged on the 1st. Cancel whenever you like under Plus > Manage in the "
            "app: you keep Plus until the month ends, and the thermostat works fine without it.",
        ),
        keywords=("$3", "1st"),
    ),
    "wifi_connection": Intent(
        phrasings=(
            "{device} won't connect to my Wi-Fi.",
            "The app says {device} is offline.",
            "How do I connect {device} to a new router?",
            "{device} keeps dropping off the network.",
            "I changed my Wi-Fi password and now the thermostat is offline.",
            "Why can't {device} find my 5 GHz network?",
            "{device} started showing a no-connection icon {when}.",
            "How do I reset the network settings on {device}?",
            "The thermostat isn't showing up in the app anymore.",
            "My new router doesn't see {device}. What should I do?",
            "{device} lost its internet connection and won't come back.",
            "Pairing {device} with my home network fails every time.",
        ),
        answers=(
            "The T2 connects to 2.4 GHz Wi-Fi only, so make sure that band is switched on. Hold the dial for 10 "
            "seconds until the ring blinks, then pair it again from the app.",
            "The T2 works on 2.4 GHz networks only. To reconnect, hold the dial for 10 seconds to restart pairing "
            "and add the thermostat again in the app.",
        ),
        keywords=("2.4 GHz", "10 seconds"),
    ),
    "installation_help": Intent(
        phrasings=(
            "How do I install {device}?",
            "Do I need a C-wire for {device}?",
            "My old thermostat has no C-wire. Will {device} work?",
            "How long does it take to install {device}?",
            "Can I install the thermostat myself or do I need an electrician?",
            "Which wires go where when installing {device}?",
            "I'm about to mount {device}. Any tips?",
            "Is there an installation guide for {device}?",
            "Will {device} work with my heating system? I'm setting it up now.",
            "The wiring behind my old thermostat confuses me. Help with setup?",
            "What do I need before I put {device} on the wall?",
            "Is mounting the T2 a DIY job?",
        ),
        answers=(
            "The T2 needs a C-wire for power; if you have none, we send a free C-wire adapter kit on request. "
            "Installation takes about 30 minutes with the step-by-step guide in the app.",
            "You will need a C-wire (ask us for the free adapter kit if your wall has none). Most people finish "
            "in about 30 minutes by following the installation guide in the app.",
        ),
        keywords=("C-wire", "30 minutes"),
    ),
    "password_reset": Intent(
        phrasings=(
            "I forgot my password.",
            "How do I reset my Thermly password?",
            "I can't log in to the app.",
            "The password reset link doesn't work.",
            "I have been locked out of my account, it started {when}.",
            "How can I change my password? I can't remember the old one.",
            "The app keeps saying my password is wrong.",
            "I never got the reset email.",
            "Help, I can't sign in to control {device}.",
            "My login stopped working {when}.",
            "Where do I go to get a new password?",
            "The sign-in screen rejects my details, how do I get back in?",
        ),
        answers=(
            "Tap Forgot password on the sign-in screen and we email you a reset link. The link is valid for 15 "
            "minutes, so use it right away, and check your spam folder if it does not arrive.",
            "Use Forgot password on the app's sign-in screen to get a reset link by email. It expires after 15 "
            "minutes; if you cannot find it, look in your spam folder and request a new one.",
        ),
        keywords=("Forgot password", "15 minutes"),
    ),
    "change_address": Intent(
        phrasings=(
            "I need to change the delivery address for order {order}.",
            "I moved. Can I update the shipping address on my order?",
            "Wrong address on order {order}, can you fix it?",
            "Can I send {device} to my office instead of home?",
            "How do I edit the address on an order I placed {when}?",
            "I made a typo in my street name on order {order}.",
            "Please ship order {order} to a different address.",
            "Can I change where {device} gets delivered?",
            "My order is going to my old flat. How do I correct it?",
            "Is it possible to redirect order {order}?",
            "I'll be away next week, can {device} go to my neighbour's address?",
            "The postcode on order {order} is wrong, please update it.",
        ),
        answers=(
            "You can change the address until the order ships, under Orders > Edit address in the app. Once it "
            "has shipped, use the tracking link to ask the carrier to redirect it.",
            "Addresses can be edited until the order ships, from Orders > Edit address. After it ships we can no "
            "longer change it, but the carrier can redirect it through the tracking link.",
        ),
        keywords=("until the order ships",),
    ),
}

DEVICES = ("my T2", "the thermostat", "my Thermly", "the Thermly T2", "my new thermostat", "the T2", "my thermostat")
WHENS = ("yesterday", "last week", "three days ago", "on Monday", "this morning", "two weeks ago", "last Friday",
         "a few days ago", "at the weekend")
OPENERS = ("", "", "", "Hi, ", "Hello, ", "Hey, ", "Hi there! ", "Good morning. ", "Quick question: ",
           "Hello support, ", "Sorry to bother you. ", "Hi team, ")
CLOSERS = ("", "", "", " Thanks!", " Thank you.", " Thanks in advance.", " Please help.", " Appreciate it.",
           " Cheers.", " Any help is welcome.", " Thanks, Sam.", " Regards, Priya.")
TEST_ONLY_PHRASINGS = 2


def message(rng: random.Random, phrasing: str) -> str:
    text = phrasing.format(device=rng.choice(DEVICES), order=f"#{rng.randint(10000, 99999)}", when=rng.choice(WHENS))
    text = text[0].upper() + text[1:]
    opener = rng.choice(OPENERS)
    if opener.endswith(", ") and not text.startswith(("I ", "I'")):
        text = text[0].lower() + text[1:]
    return opener + text + rng.choice(CLOSERS)


def build(seed: int = SEED) -> dict[str, list[dict]]:
    """The three splits as lists of records: chat examples for train and validation, eval cases (prompt,
    reference, keywords) for test."""
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {name: [] for name in SIZES}
    # The test split is drawn first, so that its share of never-trained phrasings does not depend on the others.
    for split in ("test", "train", "validation"):
        per_intent = SIZES[split] // len(POLICIES)
        for label, intent in POLICIES.items():
            phrasings = intent.phrasings if split == "test" else intent.phrasings[:-TEST_ONLY_PHRASINGS]
            made = 0
            while made < per_intent:
                prompt = message(rng, rng.choice(phrasings))
                if " ".join(prompt.lower().split()) in seen:
                    continue
                seen.add(" ".join(prompt.lower().split()))
                answer = f"Intent: {label}\n\n{rng.choice(intent.answers)}"
                if split == "test":
                    splits[split].append({"prompt": prompt, "reference": answer, "keywords": list(intent.keywords)})
                else:
                    splits[split].append({"messages": [{"role": "system", "content": SYSTEM},
                                                       {"role": "user", "content": prompt},
                                                       {"role": "assistant", "content": answer}]})
                made += 1
        rng.shuffle(splits[split])
    return splits


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
