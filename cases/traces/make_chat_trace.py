"""Make cases/traces/chat-agent.csv: a small synthetic request trace (seeded, reproducible).

    python cases/traces/make_chat_trace.py            # rewrites chat-agent.csv beside this file

The shape is an ESTIMATE that borrows published statistics; no row comes from a real log.
Three kinds of request, mixed by request count:

- 60 % conversation — Azure LLM inference trace 2023, conversation split (Patel et al., "Splitwise:
  Efficient generative LLM inference using phase splitting", ISCA 2024; data:
  github.com/Azure/AzurePublicDataset, AzureLLMInferenceTrace_conv.csv): median prompt ≈ 1,020
  tokens, median output ≈ 129 tokens; prompts stop near the 8k context of the service traced.
- 25 % code completion — the same trace's coding split (AzureLLMInferenceTrace_code.csv): median
  prompt ≈ 1,500 tokens, median output ≈ 13 tokens.
- 15 % coding-agent steps — SyFI Trace Atlas (tracelab.cs.washington.edu, 357,161 Claude Code and
  Codex agent steps, 2025-26): 96 % of input tokens are read from the prefix cache; at prefixes of
  32k-256k tokens a step appends a median of ~700-950 new tokens; 186.9 M output tokens over
  357,161 steps ≈ 520 output tokens per step on average. Contexts are capped here at 128k (the
  context of the models the shipped case serves).

What is taken: the medians, and the split between cached prefix and new tokens. What is not
published in those sources and is our estimate: the log-normal form, its spreads (σ below), the
60/25/15 mix and the 8k / 128k caps. Arrival times are a Poisson process at 50 requests/s.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 14
ROWS = 4000
OUT = Path(__file__).with_name("chat-agent.csv")

# kind: (share of requests, (median ISL, σ, lo, hi), (median OSL, σ, lo, hi))
KINDS = {
    "conversation": (0.60, (1020, 1.0, 2, 8192), (129, 0.9, 1, 2048)),
    "code": (0.25, (1500, 1.1, 2, 8192), (13, 0.9, 1, 1024)),
    "agent": (0.15, (48_000, 0.7, 8192, 131_072), (250, 1.2, 1, 8192)),
}
AGENT_APPEND = (800, 1.0)  # median new (uncached) tokens per agent step, σ
RATE_PER_S = 50.0


def lognormal(rng, median, sigma, lo, hi, n):
    return np.clip(np.round(median * np.exp(sigma * rng.standard_normal(n))), lo, hi).astype(int)


def make(rows: int = ROWS, seed: int = SEED) -> list[dict]:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(KINDS), size=rows, p=[k[0] for k in KINDS.values()])
    arrival = np.cumsum(rng.exponential(1 / RATE_PER_S, rows))
    out = []
    for kind, (_, isl_p, osl_p) in KINDS.items():
        idx = np.nonzero(kinds == kind)[0]
        isl = lognormal(rng, *isl_p, len(idx))
        osl = lognormal(rng, *osl_p, len(idx))
        cached = np.zeros_like(isl)
        if kind == "agent":
            new = lognormal(rng, *AGENT_APPEND, 1, 10**9, len(idx))
            cached = np.maximum(isl - new, 0)
        for i, a, b, c in zip(idx, isl, osl, cached):
            out.append({"arrival_s": round(float(arrival[i]), 4), "isl": int(a), "osl": int(b), "cached_isl": int(c)})
    return sorted(out, key=lambda r: r["arrival_s"])


def main() -> None:
    rows = make()
    with open(OUT, "w", newline="") as fh:
        fh.write("# synthetic (seeded) chat/agent trace; shape estimated from published statistics: see make_chat_trace.py\n")
        w = csv.DictWriter(fh, fieldnames=["arrival_s", "isl", "osl", "cached_isl"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
