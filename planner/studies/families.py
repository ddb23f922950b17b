"""Fleet families of a Pareto study: the case's own [families.NAME], else the defaults drawn from
its chip list, and how a family narrows a raw case."""
from __future__ import annotations

from ..errors import CaseError, Problem

CHIP_GROUPS = {"hbm": ("gpu", "asic"), "prefill": ("prefill",), "sram": ("sram", "mram")}


def default_families(raw: dict, catalog) -> dict[str, dict]:
    """The fleet families the industry argues about, drawn from the case's own chip list."""
    chips = [catalog.resolve_chip(c) for c in raw.get("fleet", {}).get("chips", [])]
    cls = {c: catalog.chips[c].chip_class for c in chips}
    hbm = [c for c in chips if cls[c] in CHIP_GROUPS["hbm"]]
    pre = [c for c in chips if cls[c] in CHIP_GROUPS["prefill"]]
    sram = [c for c in chips if cls[c] in CHIP_GROUPS["sram"]]
    fams: dict[str, dict] = {}
    if hbm:
        fams["gpu-only"] = {"chips": hbm}
    if hbm and pre:
        fams["gpu+prefill"] = {"chips": hbm + pre, "stages": {"prefill": hbm + pre, "decode_attention": hbm,
                                                               "decode_ffn": hbm}}
    if hbm and sram:
        fams["gpu+sram-ffn"] = {"chips": hbm + sram, "stages": {"prefill": hbm, "decode_attention": hbm,
                                                                 "decode_ffn": hbm + sram}}
    if sram:
        fams["sram-only"] = {"chips": sram}
    fams["unrestricted"] = {"chips": chips}
    return fams


def case_families(raw: dict, catalog) -> dict[str, dict]:
    """Families defined in the case ([families.NAME] chips/stages/modes), else the defaults."""
    fams = raw.get("families")
    if not fams:
        return default_families(raw, catalog)
    if not isinstance(fams, dict) or not all(isinstance(v, dict) and isinstance(v.get("chips"), list)
                                             for v in fams.values()):
        raise CaseError("families must be tables with a chips list",
                        [Problem("families", "expected [families.NAME] chips = [...]", "see cases/rubin-lpx.toml")])
    return fams


def apply_family(raw: dict, fam: dict) -> None:
    raw.setdefault("fleet", {})
    raw["fleet"]["chips"] = list(fam["chips"])
    raw["fleet"]["stages"] = {s: list(v) for s, v in fam.get("stages", {}).items()}
    if "modes" in fam:
        raw["fleet"]["modes"] = list(fam["modes"])
    supply = raw.get("constraints", {}).get("supply", {})
    for c in list(supply):
        if c not in fam["chips"]:
            supply.pop(c)
