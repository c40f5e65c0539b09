"""Write a small synthetic draft log in the layout of 17lands' public draft data (draft_data_public.*.csv.gz).

One row per pick: the event and rank columns, the pick, then one ``pack_card_<name>`` column per card
(1 if the card is in the pack shown) and one ``pool_<name>`` column per card (copies picked so far).
The card names are generated; the drafter follows a consistent hidden preference (every card has a
fixed rating and the highest-rated card in the pack is taken), so a model can learn it.

    python experiments/mtg_draft/make_synthetic_drafts.py tests/assets/mtg_draft/draft_data_public.SYN.PremierDraft.csv
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

ADJECTIVES = ["Ashen", "Bold", "Crimson", "Dusk", "Ember", "Frost", "Gilded", "Hollow", "Iron", "Jade"]
NOUNS = ["Adept", "Behemoth", "Cantrip", "Drake", "Envoy", "Familiar", "Golem", "Herald"]
N_CARDS, PACKS, PICKS, N_DRAFTS = 40, 3, 14, 8


def cards(rng: random.Random) -> dict[str, float]:
    """Card name -> the hidden rating the drafter picks by."""
    names = rng.sample([f"{a} {n}" for a in ADJECTIVES for n in NOUNS], N_CARDS)
    return {name: rng.random() for name in sorted(names)}


def rows(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rating = cards(rng)
    names = list(rating)
    out = []
    for draft in range(N_DRAFTS):
        pool: dict[str, int] = dict.fromkeys(names, 0)
        for pack in range(1, PACKS + 1):
            for pick in range(1, PICKS + 1):
                shown = rng.sample(names, PICKS + 1 - pick)
                taken = max(shown, key=rating.get)
                row = {
                    "expansion": "SYN",
                    "event_type": "PremierDraft",
                    "draft_id": f"syn{draft:04d}",
                    "draft_time": f"2024-02-{draft + 1:02d} 12:00:00",
                    "rank": rng.choice(["bronze", "silver", "gold", "platinum", "diamond", "mythic"]),
                    "event_match_wins": rng.randint(0, 7),
                    "event_match_losses": rng.randint(0, 3),
                    "pack_number": pack - 1,  # 17lands counts packs and picks from 0
                    "pick_number": pick - 1,
                    "pick": taken,
                    "pick_maindeck_rate": round(rng.random(), 2),
                    "pick_sideboard_in_rate": 0.0,
                }
                row |= {f"pack_card_{n}": int(n in shown) for n in names}
                row |= {f"pool_{n}": pool[n] for n in names}
                out.append(row)
                pool[taken] += 1
    return out


def main(path: str) -> None:
    table = rows()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {len(table)} picks to {path}")


if __name__ == "__main__":
    main(sys.argv[1])
