"""What a race says in words: the pick against the space's base config, and whether the
search's scores ordered the raced configs as the race at full length did (lines for the test
report, from the race's record alone)."""


def against_base(race: dict | None) -> list[str]:
    """The race's pick against the space's base config, on validation (lines for
    ``final.describe``; none when the race did not include the base)."""
    rows = {r["trial"]: r for r in (race or {}).get("candidates", [])}
    base = next((r for r in rows.values() if r.get("base")), None)
    if base is None:
        return []
    pick = rows[race["winner"]]
    where = f"validation after {race['epochs']} epochs on {race['train_images']:,} images"
    if pick is base:
        lines = [f"race ({where}): the space's base config (trial {base['trial']}) won, "
                 f"{base['score']:.4f}: the search found nothing better"]  # fmt: skip
    else:
        gap = pick["score"] - base["score"]
        lines = [
            f"race ({where}): trial {pick['trial']} {pick['score']:.4f} against the space's "
            f"base config (trial {base['trial']}) {base['score']:.4f}: {100 * gap:+.2f} points"
        ]
    return lines + rung_check(list(rows.values()))


def rung_check(rows: list[dict]) -> list[str]:
    """Whether the search's scores ordered the raced configs as the race at full length did
    (lines for ``final.describe``; none for a race without the search's scores, older than
    them). A study whose rungs put the race's winner last judged its configs mid-schedule, at
    too little data or too few epochs for this space: the hint says which settings raise that."""
    known = [r for r in rows if r.get("search_score") is not None]
    if len(known) < 2 or len(known) < len(rows):
        return []
    by_search = sorted(known, key=lambda r: -r["search_score"])
    by_race = sorted(known, key=lambda r: -r["score"])
    order = ", ".join(
        f"{r['trial']} ({r['search_score']:.4f}, epoch {r.get('search_epochs', '?')})"
        for r in by_search
    )
    lines = [f"the search ranked them {order}; the race: "
             + ", ".join(f"{r['trial']} ({r['score']:.4f})" for r in by_race)]  # fmt: skip
    if by_race[0] is by_search[-1]:
        lines.append(
            "the race's winner ranked last in the search: its rungs misrank this space's "
            "configs; score them on wsd's cooldown branches (--set schedule=wsd), at more "
            "images per trial (--train-size) or a later first rung (--first-rung)"
        )
    return lines
