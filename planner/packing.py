"""Packing chip groups into the systems they are bought in (racks, boards, UltraServers).

A chip is bought in whole systems of S = chips_per_system chips (an NVL72 rack, an 8-GPU board, an LPX
rack). A unit's group of g chips of that type must be buildable inside those systems:
  - g > S: the group spans ceil(g / S) whole systems of its own (over the scale-out fabric or a
    multi-system domain) — nothing else shares them;
  - g ≤ S: the group lies inside one system; several such groups share a system when their sizes add
    up to at most S (any subset of a switched NVLink / LPX domain forms a group). A 64-GPU group in an
    NVL72 rack leaves 8 GPUs for smaller groups, never for a second 64.
The MILP writes the shared part exactly (formulations/fleet.py add_systems):
  - sizes that form a divisible chain s_1 > s_2 > … (each divides the next larger, as powers of two do):
    first-fit-decreasing is optimal, and the groups fit in r systems iff for every level i
        Σ_{g ≥ s_i} g · groups_g  ≤  s_i · ⌊S / s_i⌋ · r      (`chain_levels`)
    (each system's space already taken by larger groups is a multiple of s_i, so it offers
    ⌊S / s_i⌋ − taken / s_i slots of size s_i);
  - other sizes: one integer count per maximal packing pattern (`patterns`), exact, when there are at
    most PATTERN_LIMIT of them; beyond that, sizes are rounded up to powers of two (a chain: buildable,
    conservative by at most the rounding) and the problem says so.
`first_fit_decreasing` turns a solution's group counts into the systems a plan prints, and is the
independent re-check's witness (planner/verify.py).
"""
from __future__ import annotations

from collections import Counter

PATTERN_LIMIT = 400


def dedicated_systems(group_chips: int, system_chips: int) -> int:
    """Whole systems a group wider than one system takes (0: it shares one system)."""
    return -(-group_chips // system_chips) if group_chips > system_chips else 0


def chain_levels(sizes: list[int], system_chips: int) -> list[tuple[int, int]] | None:
    """[(s_i, chips of size-s_i slots one system offers)] largest first, or None when the sizes do not
    form a divisible chain."""
    chain = sorted(set(sizes), reverse=True)
    if any(big % small for big, small in zip(chain, chain[1:])):
        return None
    return [(s, s * (system_chips // s)) for s in chain]


def patterns(sizes: list[int], system_chips: int, limit: int = PATTERN_LIMIT) -> list[dict[int, int]] | None:
    """Maximal packing patterns of one system ({size: groups}), or None when more than `limit`."""
    sizes = sorted(set(sizes), reverse=True)
    out: list[dict[int, int]] = []

    def grow(i: int, room: int, chosen: dict[int, int]) -> bool:
        if i == len(sizes):
            if any(room >= s for s in sizes):  # not maximal: another group still fits
                return True
            out.append({s: k for s, k in chosen.items() if k})
            return len(out) <= limit
        s = sizes[i]
        for k in range(room // s, -1, -1):
            chosen[s] = k
            if not grow(i + 1, room - k * s, chosen):
                return False
        chosen[s] = 0
        return True

    return out if grow(0, system_chips, {}) else None


def round_to_chain(size: int) -> int:
    """The next power of two ≥ size: the conservative fallback's group size."""
    return 1 << (size - 1).bit_length()


def _first_fit(items, system_chips: int) -> tuple[list[Counter], list[int]]:
    """items ((key, group chips ≤ S, copies)) placed largest first into the first system with room:
    per system a Counter {key: groups} and the chips it has left."""
    held: list[Counter] = []
    free: list[int] = []
    for key, size, copies in sorted(items, key=lambda x: -x[1]):
        for _ in range(int(copies)):
            for i, room in enumerate(free):
                if room >= size:
                    held[i][key] += 1
                    free[i] -= size
                    break
            else:
                held.append(Counter({key: 1}))
                free.append(system_chips - size)
    return held, free


def first_fit_decreasing(groups: dict[int, int], system_chips: int) -> list[Counter]:
    """Groups ({size ≤ S: count}) placed largest first into the first system with room: a list of
    systems, each a Counter {size: groups}. Optimal for divisible chains."""
    return _first_fit([(g, g, k) for g, k in groups.items()], system_chips)[0]


def systems_needed(groups: dict[int, int], system_chips: int) -> int:
    """Systems the groups ({size: count}, any sizes) need: dedicated ones plus the first-fit-decreasing
    packing of the rest — exact for divisible chains, an upper bound otherwise."""
    wide = sum(dedicated_systems(g, system_chips) * k for g, k in groups.items() if g > system_chips)
    shared = {g: k for g, k in groups.items() if g <= system_chips and k}
    return wide + len(first_fit_decreasing(shared, system_chips))


def group_rows(units) -> list[tuple[str, str, int, int]]:
    """(chip, label, group chips, copies holding it) for every group of every unit row of a plan's
    units table (working copies + spare copies), read from the table alone."""
    from .problem import unit_parts

    out = []
    for i, r in enumerate(units.to_dict("records")):
        copies = int(r.get("copies", 0) or 0) + int(r.get("spares", 0) or 0)
        if copies <= 0:
            continue
        for c, n, stages in unit_parts(r["kind"], r["attn_chip"], int(r["n_attn"]), r["ffn_chip"], int(r["n_ffn"]),
                                       r.get("draft_chip", "") or "", int(r.get("n_draft", 0) or 0)):
            if n > 0:
                what = "prefill" if stages == ("prefill",) else "draft" if stages == ("decode_draft",) else (
                    "ffn" if stages == ("decode_ffn",) else "attention" if stages == ("decode_attention",) else r["kind"])
                out.append((c, f"unit {i} {r['class']} {what}", n, copies))
    return out


def layout(groups: list[tuple[str, int, int]], system_chips: int) -> list[tuple[int, tuple[tuple[str, int], ...], int]]:
    """The systems that hold `groups` ((label, group chips, copies)): a wide group's copies on whole
    systems of their own, the rest first-fit-decreasing. Rows (systems, ((label, groups per system
    or, for a wide group, its copies), …), chips used per system or per wide group), alike systems merged."""
    out = [(dedicated_systems(g, system_chips) * k, ((label, k),), g) for label, g, k in groups if g > system_chips]
    held, free = _first_fit([x for x in groups if x[1] <= system_chips], system_chips)
    merged: dict[tuple[tuple[str, int], ...], list[int]] = {}
    for h, room in zip(held, free):
        merged.setdefault(tuple(sorted(h.items())), [0, system_chips - room])[0] += 1
    return out + [(n, key, used) for key, (n, used) in merged.items()]
