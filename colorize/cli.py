"""The `colorize` command line: parses arguments and calls one plain function per stage.

No stage logic lives here. Stages are imported inside each command so `colorize --help` stays fast
(torch alone takes seconds to import) and a broken optional stage never breaks the others.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from colorize import __version__, progress
from colorize.dataset import ENGINES, FIT_MODES, PREP_BOUNDS, SPLITS
from colorize.dataset import PrepParams as PD
from colorize.errors import ColorizeError, UsageError
from colorize.models.evaluate.params import EVAL_DEFAULTS as EVD
from colorize.models.infer.params import PREDICT_DEFAULTS as PRD
from colorize.models.net import DEFAULT_TEMPERATURE
from colorize.models.train.config import TRAIN_DEFAULTS as TD
from colorize.scraper import KEYWORD_SCORE_RANGE
from colorize.scraper import SCRAPE_DEFAULTS as SD

log = logging.getLogger("colorize")


class _Group(click.Group):
    """A click group that turns expected failures into one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ColorizeError as exc:
            log.debug("expected failure", exc_info=True)
            click.echo(f"error: {exc.line()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted — finished work is kept; rerun the same command to resume (train: add --resume)", err=True)
            ctx.exit(130)


def _data_dir(ctx: click.Context) -> Path:
    return Path(ctx.obj["data_dir"])


def _default(value, ctx: click.Context, *parts: str) -> Path:
    """An explicit path option, or its default under --data-dir."""
    return Path(value) if value is not None else _data_dir(ctx).joinpath(*parts)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", type=click.Path(file_okay=False), default="data", show_default=True,
              envvar="COLORIZE_DATA_DIR", help="Root for raw photos, shards and runs (env COLORIZE_DATA_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks for expected failures.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only; no progress bars.")
@click.version_option(__version__, "--version", prog_name="colorize")
@click.pass_context
def cli(ctx: click.Context, data_dir: str, verbose: bool, quiet: bool) -> None:
    """Turn web photos into a colorization model: scrape, prep, train, predict, eval."""
    progress.configure(verbose=verbose, quiet=quiet)
    ctx.ensure_object(dict)
    ctx.obj.update(data_dir=data_dir, verbose=verbose, quiet=quiet)


def _say(report) -> None:
    """One human line on stdout (the JSON record next to the output holds the details)."""
    click.echo(report.summary_line() if hasattr(report, "summary_line") else str(report))


def _stage(module: str, func: str):
    """Import a stage's entry point when its command runs, so `--help` never loads numpy, Pillow or torch."""
    import importlib

    return getattr(importlib.import_module(module), func)


def _prep_range(field: str) -> click.ParamType:
    """The click type of a numeric prep option, from `PREP_BOUNDS` (the table prep checks Python callers with)."""
    lo, hi = PREP_BOUNDS[field]
    kind = click.FloatRange if isinstance(getattr(PD, field), float) else click.IntRange
    return kind(lo, hi)


def _download_options(command):
    """--allow-host and --timeout, defined once for every command that downloads (scrape, fetch)."""
    command = click.option(
        "--timeout", type=click.FloatRange(0, min_open=True), default=SD.timeout, show_default=True,
        help="Seconds one photo may take in all: connects, reads, redirects and retries.")(command)
    return click.option(
        "--allow-host", "allow_hosts", multiple=True, metavar="HOST[:PORT]",
        help="Also download from this host (repeatable; HOST alone = any port). Default: images.unsplash.com "
             "only; scrape adds its --base-url host.")(command)


def _path_not_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A path option followed by an option (`--dataset --help`) took that option as its path: say so, or help."""
    if value is None or not value.startswith("-") or value == "-":
        return value
    if value in ctx.help_option_names:
        click.echo(ctx.get_help())
        ctx.exit(0)
    raise UsageError(f"{param.opts[0]} needs a path, got the option {value}", f"write {param.opts[0]} PATH {value}")


# --------------------------------------------------------------------------------------------- scrape
@cli.command()
@click.option("--category", "categories", multiple=True, help="Category to scrape (repeatable); its query defaults to its name.")
@click.option("--categories-file", type=click.Path(exists=True, dir_okay=False),
              help="One category per line: `name` or `name: keyword, keyword` (# comments allowed).")
@click.option("--query", help="Keywords instead of the category name, comma-separated (single category; the web "
                              "search uses the first).")
@click.option("--dataset", type=click.Path(), callback=_path_not_option,
              help="Take photos from the Unsplash Dataset: its .zip or unzipped folder.")
@click.option("--min-confidence", type=click.FloatRange(*KEYWORD_SCORE_RANGE),
              help=f"--dataset: least keyword score {KEYWORD_SCORE_RANGE[0]:g}-{KEYWORD_SCORE_RANGE[1]:g} "
                   f"[{SD.min_keyword_score:g}].")
@click.option("--list-keywords", "list_keywords", type=click.IntRange(1), is_flag=False, flag_value=40,
              metavar="[N]", help="--dataset: print the release's N most common keywords with photo counts "
                                  "(default 40), and exit.")
@click.option("--limit", type=click.IntRange(1), default=SD.limit, show_default=True, help="Photos per category.")
@click.option("--out", type=click.Path(file_okay=False), help="Dataset folder [DATA/raw].")
@click.option("--base-url", default=SD.base_url, show_default=True)
@click.option("--width", type=click.IntRange(64, 6000), default=SD.width, show_default=True, help="Download width in px.")
@click.option("--workers", type=click.IntRange(1, 64), default=SD.workers, show_default=True, help="Download threads.")
@click.option("--per-host", type=click.IntRange(1, 32), default=SD.per_host, show_default=True, help="Connections per host.")
@click.option("--scroll-pause", type=click.FloatRange(0), default=SD.scroll_pause, show_default=True,
              help="Seconds after each scroll.")
@click.option("--browser", default=SD.browser, show_default=True, help="Chromium binary.")
@click.option("--driver", default=SD.driver, show_default=True, help="ChromeDriver binary.")
@click.option("--show-browser", is_flag=True, help="Run the browser with a window (needs a display).")
@_download_options
@click.pass_context
def scrape(ctx: click.Context, dataset: str | None, min_confidence: float | None, list_keywords: int | None,
           **opts) -> None:
    """Download category folders of Unsplash photos with a manifest: from the Unsplash Dataset (--dataset)
    or from web search (headless Chromium; unsplash.com walls it off)."""
    opts["out"] = _default(opts["out"], ctx, "raw")
    if list_keywords is not None:
        if dataset is None:
            raise UsageError("--list-keywords reads a release", "add --dataset PATH (the .zip or its folder)")
        keywords = _stage("colorize.scraper.unsplash_dataset.keywords", "list_keywords")
        _say(keywords(dataset, opts["out"], 50.0 if min_confidence is None else min_confidence, list_keywords))
        return
    if dataset is None:
        if min_confidence is not None:
            raise UsageError("--min-confidence works with --dataset only", "add --dataset PATH, or drop it")
        run_scrape = _stage("colorize.scraper.scrape", "run_scrape")

        report = run_scrape(**opts)
    else:
        run_dataset_scrape = _stage("colorize.scraper.unsplash_dataset.scrape", "run_dataset_scrape")

        web_only = ("scroll_pause", "browser", "driver", "show_browser")
        score = SD.min_keyword_score if min_confidence is None else min_confidence
        report = run_dataset_scrape(dataset=dataset, min_confidence=score,
                                    **{k: v for k, v in opts.items() if k not in web_only})
    _say(report)


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Where to rebuild the dataset [DATA/raw].")
@click.option("--workers", type=click.IntRange(1, 64), default=SD.workers, show_default=True)
@click.option("--allow-missing", is_flag=True, help="Exit 0 even if some photos are missing or changed.")
@_download_options
@click.pass_context
def fetch(ctx: click.Context, manifest: str, out: str | None, workers: int, allow_missing: bool,
          allow_hosts: tuple[str, ...], timeout: float) -> None:
    """Rebuild a shared dataset from its MANIFEST, verifying every sha256."""
    run_fetch = _stage("colorize.scraper.fetch", "run_fetch")

    report = run_fetch(Path(manifest), _default(out, ctx, "raw"), workers=workers, allow_missing=allow_missing,
                       allow_hosts=allow_hosts, timeout=timeout)
    _say(report)


# ----------------------------------------------------------------------------------------------- prep
@cli.command()
@click.option("--src", type=click.Path(file_okay=False), help="Dataset folder (manifest.json or category subfolders) [DATA/raw].")
@click.option("--out", type=click.Path(file_okay=False), help="Shard folder [DATA/shards].")
@click.option("--size", type=_prep_range("size"), default=PD.size, show_default=True)
@click.option("--fit", type=click.Choice(FIT_MODES), default=PD.fit, show_default=True)
@click.option("--grid", type=_prep_range("grid"), default=PD.grid, show_default=True, help="ab grid cell size.")
@click.option("--bins", type=_prep_range("bins"), default=PD.bins, show_default=True, help="Most frequent ab cells kept.")
@click.option("--lambda", "lam", type=_prep_range("lam"), default=PD.lam, show_default=True,
              help="Rebalancing mix with uniform.")
@click.option("--sigma", type=_prep_range("sigma"), default=PD.sigma, show_default=True, help="Prior smoothing (ab units).")
@click.option("--augment", type=_prep_range("augment"), default=PD.augment, show_default=True,
              help="Train variants per photo (0 = off).")
@click.option("--split", default=",".join(map(str, PD.split)), show_default=True, help="train,val,test fractions.")
@click.option("--seed", type=int, default=PD.seed, show_default=True)
@click.option("--shard-size", type=_prep_range("shard_size"), default=PD.shard_size, show_default=True,
              help="Samples per shard.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Processes [all cores].")
@click.option("--engine", type=click.Choice(ENGINES), default=ENGINES[0], show_default=True)
@click.option("--scheduler", help="dask scheduler address, e.g. tcp://10.0.0.5:8786 [a local cluster].")
@click.option("--max-pixels", type=_prep_range("max_pixels"), default=PD.max_pixels, show_default=True,
              help="Photos larger than this (width x height, from the header) are refused before decoding.")
@click.option("--verify", "verify_dir", type=click.Path(file_okay=False), help="Only verify the shards in this folder.")
@click.pass_context
def prep(ctx: click.Context, verify_dir: str | None, **opts) -> None:
    """Decode, resize, augment and split photos into sharded .npz with color-bin statistics."""
    if verify_dir:
        verify_shards = _stage("colorize.dataset.shards", "verify_shards")

        report = verify_shards(Path(verify_dir))
    else:
        run_prep = _stage("colorize.dataset.prep", "run_prep")

        opts["src"] = _default(opts["src"], ctx, "raw")
        opts["out"] = _default(opts["out"], ctx, "shards")
        report = run_prep(**opts)
    _say(report)


@cli.command()
@click.argument("shards_dir", type=click.Path(file_okay=False), required=False)
@click.option("--out", type=click.Path(file_okay=False), help="Where to write the pictures [SHARDS_DIR/stats].")
@click.pass_context
def stats(ctx: click.Context, shards_dir: str | None, out: str | None) -> None:
    """Print the color-bin table of a shard folder and draw its pictures."""
    run_stats = _stage("colorize.dataset.stats", "run_stats")

    shards = _default(shards_dir, ctx, "shards")
    _say(run_stats(shards, Path(out) if out else shards / "stats"))


# ---------------------------------------------------------------------------------------------- train
@cli.command()
@click.option("--shards", type=click.Path(file_okay=False), help="Shard folder [DATA/shards].")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [DATA/runs/default].")
@click.option("--epochs", type=click.IntRange(1), default=TD["epochs"], show_default=True)
@click.option("--steps", type=click.IntRange(1), default=TD["steps"],
              help="Planned optimizer steps in all, instead of --epochs (may end inside an epoch): the schedule "
                   "ends annealed there, so a slow machine takes longer but trains the same model.")
@click.option("--batch-size", type=click.IntRange(1), default=TD["batch_size"], show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=TD["lr"], show_default=True)
@click.option("--width", type=click.IntRange(4), default=TD["width"], show_default=True, help="Base channel width.")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=TD["temperature"], show_default=True)
@click.option("--soft-targets", type=click.IntRange(0), default=TD["soft_targets"], show_default=True,
              help="K nearest bins as soft targets (0 = hard).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=TD["device"], show_default=True)
@click.option("--amp/--no-amp", default=TD["amp"], show_default=True, help="Mixed precision on CUDA.")
@click.option("--hints/--no-hints", default=TD["hints"], show_default=True,
              help="Train a model that takes colour hints (simulated in training); --no-hints: automatic only.")
@click.option("--hint-weight", type=click.FloatRange(0), default=TD["hint_weight"], show_default=True,
              help="Weight of the hint term (painted vs hinted ab at hinted pixels) against the classification.")
@click.option("--compile", "compile_model", is_flag=True, default=TD["compile_model"], help="torch.compile the model.")
@click.option("--workers", type=click.IntRange(0), default=TD["workers"], show_default=True, help="DataLoader workers.")
@click.option("--seed", type=int, default=TD["seed"], show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt, mid-epoch too.")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), help="Stop cleanly after this long.")
@click.option("--route", type=click.Choice(["none", "category", "profile"]), default="none", show_default=True,
              help="Train a router and one specialist per category or color profile.")
@click.option("--profiles", type=click.IntRange(2), default=4, show_default=True, help="k for --route profile.")
@click.pass_context
def train(ctx: click.Context, **opts) -> None:
    """Train the compact U-Net colorizer from the shards (GPU when present).

    \b
    Writes OUT/last.pt, best.pt, metrics.jsonl, loss.png, samples/ and train-run.json.
    Ctrl-C or --max-minutes save last.pt first; --resume continues exactly there.
    Several GPUs: torchrun --standalone --nproc_per_node=N -m colorize train ...
    """
    opts["shards"] = _default(opts["shards"], ctx, "shards")
    opts["out"] = _default(opts["out"], ctx, "runs", "default")
    route = opts.pop("route")
    profiles = opts.pop("profiles")
    if route == "none":
        run_train = _stage("colorize.models.train.loop", "run_train")

        result = run_train(**opts)
    else:
        train_routed = _stage("colorize.models.routing.train", "train_routed")

        result = train_routed(route=route, n_profiles=profiles, **opts)
    _say(result)


# ------------------------------------------------------------------------------------ predict / eval
@cli.command()
@click.option("--model", required=True, type=click.Path(), help="Checkpoint (.pt) or model bundle folder.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default=PRD.out, show_default=True)
@click.option("--temperature", default=str(PRD.temperature), show_default=True,
              help="T, or several (0.2,0.38,1.0) for a sheet of them side by side.")
@click.option("--confidence", is_flag=True, default=PRD.confidence, help="Also write the confidence map.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=PRD.device, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=PRD.batch, show_default=True)
@click.option("--alpha", type=click.FloatRange(0), default=PRD.alpha, show_default=True,
              help="Video smoothing: frame i back weighs e^(-alpha*i).")
@click.option("--window", type=click.IntRange(0), default=PRD.window, show_default=True,
              help="Video smoothing reach: older frames weigh <= 5% in total (0 = off).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=PRD.min_confidence, show_default=True,
              help="Bundles: below this router confidence use the global model.")
@click.option("--max-pixels", type=click.IntRange(1), default=PRD.max_pixels, show_default=True,
              help="Refuse photos and video frames larger than this (width x height, read from the header).")
@click.option("--hints", type=click.Path(), default=PRD.hints,
              help="A hints file for the one photo, or a folder of <stem>.json files matched by relative path.")
def predict(**opts) -> None:
    """Colorize images, folders and videos at full resolution."""
    run_predict = _stage("colorize.models.infer.predict", "run_predict")

    report = run_predict(**opts)
    _say(report)
    if getattr(report, "failed", 0):
        sys.exit(1)


@cli.command(name="eval")
@click.option("--model", required=True, type=click.Path(), help="Checkpoint (.pt) or model bundle folder.")
@click.option("--shards", type=click.Path(file_okay=False), help="Shard folder to evaluate on.")
@click.option("--split", type=click.Choice(SPLITS), default=EVD.split, show_default=True)
@click.option("--images", type=click.Path(file_okay=False), help="Or a folder of color images (subfolders = categories).")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=EVD.temperature, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=EVD.out, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=EVD.device, show_default=True)
@click.option("--gallery", type=click.IntRange(0), default=EVD.gallery, show_default=True,
              help="Samples shown in the report.")
@click.option("--max-pixels", type=click.IntRange(1), default=EVD.max_pixels, show_default=True,
              help="Refuse photos larger than this (width x height, read from the header before decoding).")
@click.option("--hints-sweep", default=EVD.hints_sweep,
              help="Also score with that many simulated colour hints per photo, e.g. 0,1,2,5,10,20,50, "
                   "against colour propagation (Levin et al. 2004).")
def evaluate(**opts) -> None:
    """Measure a model (or a bundle: plus its routing tables) against the gray baseline: eval.json + report.html."""
    run_eval = _stage("colorize.models.routing.evaluate", "evaluate")

    _say(run_eval(**opts))


# ------------------------------------------------------------------------------------- demo / turing
@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="demo-run", show_default=True)
@click.option("--quick", is_flag=True, help="A much shorter run (for CI).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--browser", default=SD.browser, show_default=True, help="Chromium binary.")
@click.option("--driver", default=SD.driver, show_default=True, help="ChromeDriver binary.")
@click.option("--source", type=click.Choice(["web", "dataset"]), default="web", show_default=True,
              help="Scrape the local site's search pages, or the gallery written as an Unsplash Dataset release.")
def demo(**opts) -> None:
    """Run the whole chain offline on an embedded gallery served by a local Unsplash-like site."""
    run_demo = _stage("colorize.demo.run", "run_demo")

    _say(run_demo(**opts))


@cli.command()
@click.option("--model", "models", multiple=True, type=click.Path(), help="Checkpoint; give two to compare conditions.")
@click.option("--shards", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option("--images", type=click.Path(file_okay=False))
@click.option("--pairs", type=click.IntRange(1), default=40, show_default=True)
@click.option("--practice", type=click.IntRange(0), default=3, show_default=True)
@click.option("--temperature", default=str(DEFAULT_TEMPERATURE), show_default=True, help="T, or two (0.38,1.0) to compare conditions.")
@click.option("--view-ms", type=click.IntRange(0), default=1000, show_default=True, help="0 = unlimited viewing.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="turing", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--results", "results_dir", type=click.Path(file_okay=False), help="Only tally the answers in this study folder.")
@click.option("--no-serve", is_flag=True, help="Prepare the pairs and exit.")
def turing(**opts) -> None:
    """Run a "real or colorized?" study in the browser, or tally one with --results."""
    run_turing = _stage("colorize.turing", "run_turing")

    _say(run_turing(**opts))


@cli.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--model", required=True, type=click.Path(), help="Checkpoint (.pt) or bundle folder.")
@click.option("--out", type=click.Path(file_okay=False), help="Where Save writes IMAGE's hints file and colour "
              "image (default: IMAGE's folder); an existing hints file there is continued.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 = any free port.")
@click.option("--open", "open_", is_flag=True, help="Open the page in the default browser.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--max-pixels", type=click.IntRange(1), default=PRD.max_pixels, show_default=True,
              help="Refuse larger photos (checked from the header, before decoding).")
def hints(open_: bool, **opts) -> None:
    """Place colour hints on IMAGE in a local page (127.0.0.1); the model colours the rest."""
    hints_command = _stage("colorize.editor.run", "hints_command")

    _say(hints_command(open=open_, **opts))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    cli.main(args=argv, prog_name="colorize", obj={})


if __name__ == "__main__":
    main()
