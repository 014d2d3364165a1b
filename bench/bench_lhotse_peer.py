"""The lhotse reference: lhotse 1.33's DynamicBucketingSampler through the padless peer.

    python bench/bench_lhotse_peer.py alone --manifest /tmp/canary-1m.jsonl [--world-size 8]
    python bench/bench_lhotse_peer.py side-by-side --case canary=/tmp/canary-1m.jsonl:plan.json \
        --case real=/tmp/real.jsonl:plan-real.json

``alone`` runs `padless.peers.lhotse_run` over a metadata manifest with ``num_tokens``
(e.g. from ``bench/datasets.py canary-mix``) in the configurations the issue quotes for
orientation (1D 30 buckets and 2D 30x2 at a 360 s padded budget, fixed batches of 64, lhotse's
own bin estimate, lazily built cuts) and reports per configuration: examples/s through the
sampler (conversion excluded), conversion time, seconds to first batch, audio and token
padding over all batches, mean batch size; then the synchronised-bucket agreement across
``--world-size`` ranks per tenth of the epoch, and the peak RSS of a fresh process holding all
cuts vs building them lazily. Given bins are equal-cumulative-duration edges on a random
sample (the paper's baseline). Writes ``bench/results/<date>-lhotse-peer.md``. Timings share
the machine with whatever else runs: compare rows of one record, not records.

``side-by-side``: for each case (manifest and plan from ``padless plan``), runs
``padless bench-sampler ... --batch-duration 360 --compare lhotse --json`` with padless's
defaults and with ``--paper`` on one rank, and with the defaults on ``--world-size`` ranks, and
writes ``bench/results/<date>-lhotse-side-by-side.md``: the peer's check (with ``--paper`` both
samplers follow the same rules, so kept examples, filter counts and padding must agree) and a
first comparison. The sampling engine's acceptance records are its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import typer

from padless.data.example import Example
from padless.peers.lhotse_config import LhotsePeerConfig
from padless.peers.lhotse_run import LhotsePeerResult, measure_lhotse_peer_rss, run_lhotse_peer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, command, environment, today, write_record  # bench/record.py

#: Packages the record lists: the peer runs lhotse, which leans on numpy and torch.
PACKAGES = ("numpy", "torch", "lhotse")


def read_examples(path: Path, limit: int | None) -> list[Example]:
    out = []
    with open(path, "rb") as f:
        for line in f:
            row = orjson.loads(line)
            out.append(Example(row["id"], row["duration"], None, num_tokens=row["num_tokens"]))
            if limit is not None and len(out) == limit:
                break
    return out


def equal_duration_edges(d: np.ndarray, k: int) -> np.ndarray:
    """Upper edges of k bins holding equal cumulative duration of ``d``."""
    s = np.sort(d)
    cum = np.cumsum(s)
    inner = s[np.searchsorted(cum, cum[-1] * np.arange(1, k) / k)]
    return np.unique(np.append(inner, s[-1]))


def bins_2d(d: np.ndarray, t: np.ndarray, k: int, sub: int) -> tuple[tuple[float, float], ...]:
    """Each duration bin split into ``sub`` token bins of equal cumulative tokens."""
    edges = equal_duration_edges(d, k)
    which = np.searchsorted(edges, d, side="left")
    pairs = []
    for i, edge in enumerate(edges):
        toks = np.sort(t[which == i])
        if not len(toks):
            continue
        cum = np.cumsum(toks)
        inner = toks[np.searchsorted(cum, cum[-1] * np.arange(1, sub) / sub)]
        pairs.extend((float(edge), float(tok)) for tok in np.unique(np.append(inner, toks[-1])))
    return tuple(pairs)


def padding(result: LhotsePeerResult, lengths: dict[str, tuple[float, int]]) -> dict[str, float]:
    audio = audio_pad = tok = tok_pad = 0.0
    for rank in result.ranks:
        for batch in rank.batches:
            d = [lengths[i][0] for i in batch]
            t = [lengths[i][1] for i in batch]
            audio += sum(d)
            audio_pad += len(d) * max(d)
            tok += sum(t)
            tok_pad += len(t) * max(t)
    steps = sum(r.steps for r in result.ranks)
    return {
        "audio_padding": 1 - audio / audio_pad,
        "token_padding": 1 - tok / tok_pad,
        "mean_batch_size": result.examples / steps,
    }


def agreement_by_tenth(result: LhotsePeerResult) -> list[float]:
    """Share of steps at which every rank drew from the same bucket, per tenth of the epoch."""
    steps = min(r.steps for r in result.ranks)
    same = np.array([len({r.buckets[s] for r in result.ranks}) == 1 for s in range(steps)])
    return [float(part.mean()) for part in np.array_split(same, 10)]


app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.command("alone")
def alone(
    manifest: Path = typer.Option(..., help="Metadata manifest with num_tokens."),
    limit: int | None = typer.Option(None, help="Read only the first N lines."),
    world_size: int = typer.Option(8, help="Ranks for the synchronised-bucket agreement run."),
    buffer_size: int = typer.Option(20_000, help="Examples in each sampler's buffer."),
    sample_size: int = typer.Option(100_000, help="Random sample the given bins come from."),
    out_dir: Path = typer.Option(RESULTS, help="Where the record goes."),
) -> None:
    """Measure lhotse's DynamicBucketingSampler through the padless peer; write a record."""
    from rich.console import Console

    console = Console(stderr=True)
    examples = read_examples(manifest, limit)
    lengths = {e.id: (e.duration, e.num_tokens or 0) for e in examples}
    d = np.array([e.duration for e in examples])
    t = np.array([e.num_tokens for e in examples])
    rng = np.random.default_rng(0)
    pick = rng.choice(len(d), size=min(sample_size, len(d)), replace=False)
    edges = tuple(float(x) for x in equal_duration_edges(d[pick], 30))
    keep = t[pick] / d[pick] <= 25
    grid = bins_2d(d[pick][keep], t[pick][keep], 30, 2)
    common = {"buffer_size": buffer_size, "seed": 0}
    configs = {
        "1D 30 buckets, 360 s": LhotsePeerConfig(bins=edges, max_duration=360.0, **common),
        "1D, lhotse's own bins (first 10k)": LhotsePeerConfig(
            num_buckets=30, num_examples_for_bins=10_000, max_duration=360.0, **common
        ),
        "2D 30x2, 360 s, TPS <= 25": LhotsePeerConfig(
            bins=grid, max_duration=360.0, tps_max=25.0, **common
        ),
        "1D 30 buckets, batches of 64": LhotsePeerConfig(bins=edges, batch_size=64, **common),
        "1D 30 buckets, 360 s, lazy cuts": LhotsePeerConfig(
            bins=edges, max_duration=360.0, materialize=False, **common
        ),
    }
    rows = []
    for name, config in configs.items():
        console.log(f"running {name}")
        start = time.perf_counter()
        result = run_lhotse_peer([examples], config)
        pad = padding(result, lengths)
        rows.append(
            f"| {name} | {result.examples_per_s:,.0f} | {result.convert_s:.1f} | "
            f"{result.first_batch_s:.2f} | {pad['audio_padding']:.1%} | "
            f"{pad['token_padding']:.1%} | {pad['mean_batch_size']:.1f} | "
            f"{sum(result.filtered.values())} | {time.perf_counter() - start:.0f} |"
        )
        console.log(rows[-1])
        del result

    parts = [examples[r::world_size] for r in range(world_size)]
    agreements = {}
    for name, config in {
        "1D 30 buckets, 360 s": configs["1D 30 buckets, 360 s"],
        "2D 30x2, 360 s, TPS <= 25": configs["2D 30x2, 360 s, TPS <= 25"],
    }.items():
        console.log(f"agreement over {world_size} ranks: {name}")
        result = run_lhotse_peer(parts, config)
        tenths = agreement_by_tenth(result)
        steps = [r.steps for r in result.ranks]
        agreements[name] = (tenths, steps)
        console.log(name, [f"{x:.2f}" for x in tenths])
        del result

    rss = {}
    for name in ("1D 30 buckets, 360 s", "1D 30 buckets, 360 s, lazy cuts"):
        console.log(f"peak RSS: {name}")
        report = measure_lhotse_peer_rss([examples], configs[name])
        rss[name] = report

    text = [
        f"# lhotse peer: DynamicBucketingSampler on {len(examples):,} examples ({today()})\n",
        f"Command: `{command()}`\n",
        f"Manifest: `{manifest}` ({len(examples):,} examples, mean duration {d.mean():.2f} s). "
        f"Given bins: equal cumulative duration on a random {len(pick):,} sample; 2D token "
        f"sub-bins equal cumulative tokens, TPS <= 25 sample. Buffer {buffer_size:,}, shuffle, "
        "seed 0, one rank unless stated. Padding is over all emitted batches: "
        "1 - sum(lengths) / sum(batch size x longest).\n",
        "| configuration | examples/s | convert s | first batch s | audio padding | "
        "token padding | mean batch | filtered | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Synchronised buckets (lhotse `sync_buckets=True`), {world_size} ranks with their own "
        "data: share of steps at which all ranks drew the same bucket, per tenth of the epoch.\n",
        "| configuration | steps per rank | " + " | ".join(f"{i}/10" for i in range(1, 11)) + " |",
        "|---|---|" + "---:|" * 10,
        *(
            f"| {name} | {min(steps)}-{max(steps)} | "
            + " | ".join(f"{x:.0%}" for x in tenths)
            + " |"
            for name, (tenths, steps) in agreements.items()
        ),
        "",
        "Peak RSS of a fresh process (`measure_lhotse_peer_rss`: max RSS minus the RSS after "
        "importing torch and lhotse; cuts carry id, duration, token count, no text).\n",
        "| configuration | peak RSS MB | baseline MB | peak - baseline MB | examples/s |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {r.peak_rss_mb:.0f} | {r.baseline_rss_mb:.0f} | "
            f"{r.peak_over_baseline_mb:.0f} | {r.summary['examples_per_s']:,.0f} |"
            for name, r in rss.items()
        ),
        "",
        environment(*PACKAGES),
    ]
    write_record("lhotse-peer", "\n".join(text), out_dir)


SIDE_KEYS = (
    ("examples", "{:,}"),
    ("audio_padding", "{:.2%}"),
    ("token_padding", "{:.2%}"),
    ("mean_batch_size", "{:.1f}"),
    ("examples_per_s", "{:,.0f}"),
    ("first_batch_s", "{:.3f}"),
    ("peak_rss_mb", "{:.0f}"),
    ("rank_agreement", "{:.1%}"),
)


@app.command("side-by-side")
def side_by_side(
    case: list[str] = typer.Option(..., help="NAME=MANIFEST:PLAN, repeatable."),
    world_size: int = typer.Option(8, help="Ranks of the multi-rank run."),
    out_dir: Path = typer.Option(RESULTS, help="Where the record goes."),
) -> None:
    """Run padless bench-sampler --compare lhotse per case; write a record."""
    import json

    from rich.console import Console

    console = Console(stderr=True)
    rows, filters, tenths, commands = [], [], [], []
    for spec in case:
        name, _, paths = spec.partition("=")
        manifest, _, plan = paths.partition(":")
        if not (name and manifest and plan):
            raise typer.BadParameter(f"expected NAME=MANIFEST:PLAN, got {spec!r}")
        for label, extra in (
            ("padless defaults, 1 rank", []),
            ("--paper, 1 rank", ["--paper"]),
            (f"padless defaults, {world_size} ranks", ["--world-size", str(world_size)]),
        ):
            cmd = [
                sys.executable, "-m", "padless", "bench-sampler", manifest, "--plan", plan,
                "--batch-duration", "360", *extra, "--compare", "lhotse", "--json",
            ]  # fmt: skip
            commands.append("padless " + " ".join(cmd[3:]))
            console.log(commands[-1])
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{commands[-1]} failed:\n{proc.stderr[-3000:]}")
            out = json.loads(proc.stdout)
            peer = out["lhotse"]
            for who, rep in (("padless", out), ("lhotse", peer)):
                cells = ["-" if rep.get(k) is None else fmt.format(rep[k]) for k, fmt in SIDE_KEYS]
                batches = rep["batches"]
                steps = f"{min(batches)}-{max(batches)}" if len(batches) > 1 else str(batches[0])
                rows.append(f"| {name} | {label} | {who} | {steps} | " + " | ".join(cells) + " |")
            kept = {k: v for k, v in peer["filtered"].items() if v}
            filters.append(f"| {name} | {label} | {out['filtered']} | {kept} |")
            if len(out["batches"]) > 1:
                tenths.append(
                    f"| {name} | {label} | "
                    + " ".join(f"{x:.0%}" for x in out["rank_agreement_by_tenth"])
                    + " | "
                    + " ".join(f"{x:.0%}" for x in peer["rank_agreement_by_tenth"])
                    + " |"
                )
    text = [
        f"# padless sampler vs lhotse 1.33, side by side ({today()})\n",
        f"Command: `{command()}`\n",
        "Runs (each prints one JSON object; lhotse's figures are its `lhotse` key):\n",
        *(f"- `{c}`" for c in commands),
        "",
        "lhotse's examples/s excludes building its cuts; padless's includes reading the "
        "manifest. lhotse's peak RSS is a fresh process building cuts lazily; padless's is its "
        "own process, which with `--compare` also holds every rank's Examples for the peer.\n",
        "| case | run | sampler | batches per rank | " + " | ".join(k for k, _ in SIDE_KEYS) + " |",
        "|---|---|---|---|" + "---:|" * len(SIDE_KEYS),
        *rows,
        "",
        "Filtered examples by reason (the peer counts under padless's names):\n",
        "| case | run | padless | lhotse |",
        "|---|---|---|---|",
        *filters,
        "",
        "Rank agreement per tenth of the epoch (padless | lhotse):\n",
        "| case | run | padless | lhotse |",
        "|---|---|---|---|",
        *tenths,
        "",
        environment(*PACKAGES),
    ]
    write_record("lhotse-side-by-side", "\n".join(text), out_dir)


if __name__ == "__main__":
    app()
