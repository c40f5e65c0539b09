"""A generated world for the offline default experiment.

The Hub cannot be reached from CI, so the default experiment needs general
knowledge that a tiny model can learn on two CPU cores in about a minute, and
then forget. The world has people with facts about them (knowledge), daily
routines (regular patterns) and short passages (reading). Everything here is a
pure function of a :class:`WorldSpec`: the same spec gives the same text.

Text is lower-case words separated by single spaces, punctuation as its own
word, so a word-level tokenizer covers it exactly.

Every generated example is a ``{"prompt": ..., "response": ...}`` pair: a
decoder-only model trains on the two joined, an encoder-decoder model reads
the prompt and writes the response. Evaluation items are multiple-choice rows
``{"question": ..., "choices": [...], "answer": int}``.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from forgetbench.validation import Fraction, NonNegative, Positive, check_fields

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"

JOBS = [
    "baker",
    "farmer",
    "doctor",
    "teacher",
    "painter",
    "sailor",
    "miner",
    "singer",
    "tailor",
    "hunter",
    "writer",
    "potter",
]
PETS = ["cat", "dog", "horse", "goat", "bird", "fish", "rabbit", "snake"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# relation -> (value pool key, statement templates used in the corpus, question used for QA)
RELATIONS: dict[str, tuple[str, list[str], str]] = {
    "home": (
        "cities",
        ["{p} lives in {v} .", "{p} is from the city of {v} .", "the home of {p} is {v} ."],
        "question : where does {p} live ? answer :",
    ),
    "job": (
        "jobs",
        ["{p} works as a {v} .", "{p} earns a living as a {v} .", "the job of {p} is {v} ."],
        "question : what is the job of {p} ? answer :",
    ),
    "pet": (
        "pets",
        ["{p} has a {v} .", "{p} owns a pet {v} .", "the pet of {p} is a {v} ."],
        "question : what pet does {p} have ? answer :",
    ),
    "color": (
        "colors",
        ["{p} likes the color {v} .", "the favorite color of {p} is {v} .", "{p} paints everything {v} ."],
        "question : what color does {p} like ? answer :",
    ),
}

# Ten routines of five steps: the regular patterns of the continuation task.
ROUTINES: list[list[str]] = [
    ["picks up a pan", "heats the oil", "cracks the eggs", "stirs the food", "serves the meal"],
    ["opens the gate", "feeds the goats", "milks the cow", "cleans the barn", "closes the gate"],
    ["takes a brush", "mixes the paint", "paints the wall", "washes the brush", "admires the wall"],
    ["finds a book", "reads the first page", "turns the pages", "finishes the story", "returns the book"],
    ["packs a bag", "walks to the station", "boards the train", "watches the hills", "arrives at the sea"],
    ["fills a bucket", "soaps the cart", "scrubs the wheels", "rinses the cart", "dries the cart"],
    ["sharpens a pencil", "draws a circle", "adds two eyes", "draws a smile", "signs the drawing"],
    ["plants a seed", "waters the soil", "waits for rain", "sees a sprout", "picks the flower"],
    ["tunes the harp", "plays a song", "sings the words", "bows to the crowd", "leaves the stage"],
    ["buys some wool", "spins the thread", "weaves the cloth", "sews a coat", "wears the coat"],
]

INSTRUCTION = "instruction : {} response :"


@dataclass(frozen=True)
class WorldSpec:
    """What the generated world holds; every field changes the generated text.

    Attributes:
        seed: seed of all random choices.
        n_people: people with one fact per relation (knowledge).
        n_cities: cities people live in.
        qa_fraction: fraction of people whose facts also appear as questions and
            answers in the corpus; knowledge is tested on the other people, so a
            model must answer questions about facts it only read as statements.
        statement_repeats: how many statements (random templates) of each fact.
        n_routine_docs: routine passages in the corpus.
        n_reading_docs: reading passages (with a question) in the corpus.
        n_eval: held-out items per general eval task.
        n_stream_train: training examples per stream task.
        n_stream_eval: held-out items per stream task, in each of its test and validation splits.
    """

    seed: int = 0
    n_people: Positive = 100
    n_cities: Positive = 16
    qa_fraction: Fraction = 0.65
    statement_repeats: Positive = 3
    n_routine_docs: NonNegative = 200
    n_reading_docs: Positive = 600
    n_eval: Positive = 200
    n_stream_train: Positive = 2000
    n_stream_eval: Positive = 100

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict:
        return asdict(self)


def _names(rng: random.Random, count: int, syllables: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


@dataclass(frozen=True)
class World:
    """The sampled entities of a world; build with :func:`build_world`."""

    spec: WorldSpec
    people: list[str]
    cities: list[str]
    strangers: list[str]  # names used only in reading passages
    facts: dict[str, dict[str, str]]  # person -> relation -> value
    qa_people: frozenset[str]  # people whose facts are also seen as questions
    cipher: dict[str, str]  # word -> its word in the "zib" language of a stream task

    def pool(self, key: str) -> list[str]:
        return _value_pool(key, self.cities)

    @property
    def tested_people(self) -> list[str]:
        return [p for p in self.people if p not in self.qa_people]


def build_world(spec: WorldSpec) -> World:
    """Sample the world's entities and facts from ``spec.seed``."""
    rng = random.Random(spec.seed)
    taken: set[str] = set()
    cities = _names(rng, spec.n_cities, 3, taken)
    people = _names(rng, spec.n_people, 2, taken)
    strangers = _names(rng, 60, 2, taken)
    facts = {p: {rel: rng.choice(_value_pool(RELATIONS[rel][0], cities)) for rel in RELATIONS} for p in people}
    qa_people = frozenset(rng.sample(people, int(len(people) * spec.qa_fraction)))
    cipher_words = sorted(set(JOBS + PETS + COLORS + cities))
    cipher = dict(zip(cipher_words, _names(rng, len(cipher_words), 2, taken), strict=True))
    return World(spec, people, cities, strangers, facts, qa_people, cipher)


def _value_pool(key: str, cities: list[str]) -> list[str]:
    """The values a relation draws from (key: cities, jobs, pets or colors)."""
    return {"cities": cities, "jobs": JOBS, "pets": PETS, "colors": COLORS}[key]


def fact_sentence(world: World, person: str, relation: str) -> str:
    """A fact in the corpus's first template ("bobi lives in kazumo ."): how instructions answer it."""
    return RELATIONS[relation][1][0].format(p=person, v=world.facts[person][relation])


def bare_question(relation: str, person: str) -> str:
    """The corpus's question without its "question :" and "answer :" frame ("where does bobi live ?")."""
    return RELATIONS[relation][2].format(p=person).removeprefix("question : ").removesuffix(" answer :")


def _split_at_value(sentence: str, value: str) -> dict[str, str]:
    """A statement as a pair: everything before the value, then the value onward."""
    words = sentence.split()
    cut = words.index(value)
    return {"prompt": " ".join(words[:cut]), "response": " ".join(words[cut:])}


def _choices(rng: random.Random, answer: str, pool: list[str]) -> dict:
    """Four options, the answer at a random position."""
    options = rng.sample([x for x in pool if x != answer], 3)
    position = rng.randrange(4)
    options.insert(position, answer)
    return {"choices": options, "answer": position}


# --- the pretraining corpus -------------------------------------------------------


def corpus(world: World) -> list[dict[str, str]]:
    """The general-knowledge corpus the base model is pretrained on, shuffled."""
    return _corpus_style(world, random.Random(world.spec.seed + 1))


def general_text(world: World) -> list[dict[str, str]]:
    """Held-out text in the corpus's style, as much of it: other paraphrases of the same facts, other
    routines and passages. The tiny world's general data (the study's replay mixes general
    instruction data into each task); like the corpus it asks nothing about a tested person."""
    return _corpus_style(world, random.Random(world.spec.seed + 5))


def _corpus_style(world: World, rng: random.Random) -> list[dict[str, str]]:
    docs = _statements(world, rng) + _questions(world, world.qa_people)
    docs += [_routine_doc(rng, world.people) for _ in range(world.spec.n_routine_docs)]
    docs += [_reading_doc(rng, world)[0] for _ in range(world.spec.n_reading_docs)]
    rng.shuffle(docs)
    return docs


def _statements(world: World, rng: random.Random) -> list[dict[str, str]]:
    docs = []
    for person, relations in world.facts.items():
        for relation, value in relations.items():
            templates = RELATIONS[relation][1]
            for _ in range(world.spec.statement_repeats):
                sentence = rng.choice(templates).format(p=person, v=value)
                docs.append(_split_at_value(sentence, value))
    return docs


def _questions(world: World, people) -> list[dict[str, str]]:
    return [
        {"prompt": RELATIONS[rel][2].format(p=person), "response": value}
        for person in sorted(people)
        for rel, value in world.facts[person].items()
    ]


def _routine_context(person: str, steps: list[str]) -> str:
    return " then ".join(f"{person} {step} ." for step in steps) + " then " + person


def _routine_doc(rng: random.Random, names: list[str]) -> dict[str, str]:
    routine = rng.choice(ROUTINES)
    shown = rng.randrange(1, len(routine))
    person = rng.choice(names)
    return {"prompt": _routine_context(person, routine[:shown]), "response": routine[shown] + " ."}


def _reading_doc(rng: random.Random, world: World) -> tuple[dict[str, str], list[str]]:
    """A passage about a stranger, a question on it, and the pool its answer is from."""
    name = rng.choice(world.strangers)
    values = {rel: rng.choice(world.pool(RELATIONS[rel][0])) for rel in RELATIONS}
    sentences = [RELATIONS[rel][1][0].format(p=name, v=v) for rel, v in values.items()]
    rng.shuffle(sentences)
    relation = rng.choice(list(RELATIONS))
    question = RELATIONS[relation][2].format(p=name)
    # the answer restates the passage's sentence up to the value: found by reading (an induction
    # head), which a 3-layer model learns; a bare question it answered from memorised passages
    restated = _split_at_value(RELATIONS[relation][1][0].format(p=name, v=values[relation]), values[relation])
    prompt = "passage : " + " ".join(sentences) + " " + question + " " + restated["prompt"]
    return {"prompt": prompt, "response": values[relation]}, world.pool(RELATIONS[relation][0])


# --- the general-ability eval sets (held out from the corpus) ---------------------


def knowledge_items(world: World) -> list[dict]:
    """MMLU-shaped: a question about a fact the corpus states but never asks."""
    rng = random.Random(world.spec.seed + 2)
    pairs = [(p, rel) for p in world.tested_people for rel in RELATIONS]
    rng.shuffle(pairs)
    items = []
    for person, relation in pairs[: world.spec.n_eval]:
        value = world.facts[person][relation]
        question = RELATIONS[relation][2].format(p=person)
        items.append({"question": question, **_choices(rng, value, world.pool(RELATIONS[relation][0]))})
    return items


def continuation_items(world: World) -> list[dict]:
    """HellaSwag-shaped: pick the next step of a routine, performed by a stranger."""
    rng = random.Random(world.spec.seed + 3)
    items = []
    for _ in range(world.spec.n_eval):
        index = rng.randrange(len(ROUTINES))
        shown = rng.randrange(1, 5)
        answer = ROUTINES[index][shown] + " ."
        wrong = [r[shown] + " ." for i, r in enumerate(ROUTINES) if i != index]
        question = _routine_context(rng.choice(world.strangers), ROUTINES[index][:shown])
        items.append({"question": question, **_choices(rng, answer, [answer, *wrong])})
    return items


def reading_items(world: World) -> list[dict]:
    """RACE-shaped: a new passage, a question on it, four options."""
    rng = random.Random(world.spec.seed + 4)
    items = []
    for _ in range(world.spec.n_eval):
        doc, pool = _reading_doc(rng, world)
        items.append({"question": doc["prompt"], **_choices(rng, doc["response"], pool)})
    return items


GENERAL_TASKS = {
    "knowledge": knowledge_items,
    "continuation": continuation_items,
    "reading": reading_items,
}
