"""``livedance calibrate ...``: measure latencies and keep them in the user config.

* ``livedance calibrate latency --tap``: tap along to a click track (rhythm-game offset wizard).
* ``livedance calibrate latency --loopback``: play clicks into a cable (or a JACK loop) and time them.
* ``livedance calibrate show``: print the user config and where it lives.
* ``livedance calibrate set --output-ms X --input-ms Y``: enter latencies by hand.

See docs/calibration.md. The results go to ``$LIVEDANCE_CONFIG`` or ``$XDG_CONFIG_HOME/livedance/config.json``;
``livedance perform`` reads them from there.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Optional

import typer

from livedance.cli import app

calibrate_app = typer.Typer(
    help="Measure audio latency (tap-along or loopback) and store it for `livedance perform`.",
    no_args_is_help=True,
)
app.add_typer(calibrate_app, name="calibrate")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@calibrate_app.command("latency")
def latency_command(
    ctx: typer.Context,
    tap: bool = typer.Option(False, "--tap", help="Tap along to a click track (default when no mode is given)."),
    loopback: bool = typer.Option(False, "--loopback", help="Time clicks sent from an output back into an input."),
    output: Optional[str] = typer.Option(None, "--output", help="Output device (index, name or jack:<client>); default output if omitted."),
    input_dev: Optional[str] = typer.Option(None, "--input", help="Loopback: input device; default input if omitted."),
    visual: bool = typer.Option(False, "--visual", "--no-play", help="Tap: print the beats instead of playing clicks."),
    bpm: float = typer.Option(100.0, help="Tap: click tempo in BPM (offsets up to half a beat are measurable)."),
    beats: int = typer.Option(32, help="Tap: number of clicks."),
    lead_in: float = typer.Option(2.0, "--lead-in", help="Tap: seconds of silence before the first click."),
    discard: int = typer.Option(4, min=0, help="Tap: first taps ignored (warm-up), >= 0."),
    clicks: int = typer.Option(8, min=3, help="Loopback: clicks played (>= 3)."),
    jack_loop: bool = typer.Option(
        False, "--jack-loop", help="Loopback on JACK: connect livedance's own JACK outputs to its inputs (no cable)."
    ),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", min=8000, max=96000,
                                              help="Hz (8000..96000); default: the device's."),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="Config file to update (default $LIVEDANCE_CONFIG or $XDG_CONFIG_HOME/livedance/config.json)."
    ),
    save: bool = typer.Option(True, "--save/--no-save", help="Store the result in the config file."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Measure the latency the sound card does not report and store it for `livedance perform`.

    --tap plays a click track (or, with --visual or without an output device, prints the beats); tap Enter or space on each beat; q quits. The offset is the median of (tap - nearest beat) after the warm-up taps and outliers (MAD rule) are dropped.

    --loopback plays short chirps on --output and records --input; connect the two with a cable, or use --jack-loop on a JACK device. The round trip minus what PortAudio reports is split evenly between output and input latency.
    """
    from livedance.calibration.user_config import LoopbackRecord, TapRecord, load_user_config, save_user_config
    from livedance.errors import ConfigError

    if tap and loopback:
        raise ConfigError("choose one of --tap and --loopback, not both")
    def typed(name: str) -> bool:  # given on the command line (click's ParameterSource.COMMANDLINE)
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    given = [n for n in ("bpm", "beats", "lead_in", "discard", "visual", "clicks", "jack_loop", "input_dev") if typed(n)]
    other = [n for n in given if (n in ("clicks", "jack_loop", "input_dev")) != loopback]
    if other:  # an option of the other mode would be silently ignored
        flags = ", ".join({"input_dev": "--input", "visual": "--visual/--no-play"}.get(n, "--" + n.replace("_", "-"))
                          for n in other)
        raise ConfigError(f"{flags} appl{'ies' if len(other) == 1 else 'y'} to "
                          f"{'--tap' if loopback else '--loopback'}, not to {'--loopback' if loopback else '--tap'}")
    cfg_user = load_user_config(config_file)  # fail early on a malformed file
    if save:  # ... and on one that cannot be written: a tap session is not lost at its end
        from livedance.atomic import check_output_path
        from livedance.calibration.user_config import config_path

        target = Path(config_file).expanduser() if config_file is not None else config_path()
        check_output_path(target, f"--config {target}", overwrite=True, make_parent=True)
    result: dict
    if loopback:
        from livedance.calibration.latency import LoopbackConfig, measure_loopback

        lcfg = LoopbackConfig(clicks=clicks, sample_rate=sample_rate)
        typer.echo(f"Loopback: playing {clicks} clicks and listening for them ...", err=True)
        est = measure_loopback(output, input_dev, lcfg, jack_loop=jack_loop)
        extra_ms = est.extra_s * 1000.0
        rec = LoopbackRecord(
            round_trip_ms=est.round_trip_s * 1000.0,
            reported_ms=est.reported_s * 1000.0 if math.isfinite(est.reported_s) else 0.0,
            extra_ms=extra_ms if math.isfinite(extra_ms) else 0.0,
            spread_ms=est.spread_s * 1000.0,
            clicks=int(est.lags_samples.size),
            sample_rate=est.sample_rate,
            output_device=est.output_device,
            input_device=est.input_device,
            when=_now(),
        )
        if not (math.isfinite(est.reported_s) and math.isfinite(extra_ms)):
            # PortAudio reported no latency: the unreported part is unknown, and 0 would erase a tap calibration
            typer.echo("Loopback: PortAudio reported no stream latency, so the unreported part cannot be told from "
                       f"the round trip ({rec.round_trip_ms:.1f} ms); output_latency_ms and input_latency_ms are left "
                       "as they were (set them with `livedance calibrate set`).", err=True)
        else:
            cfg_user.loopback = rec  # (a run that could not tell the unreported part keeps the last good record)
            cfg_user.output_latency_ms = rec.extra_ms / 2.0
            cfg_user.input_latency_ms = rec.extra_ms / 2.0
        result = {
            "mode": "loopback",
            "round_trip_ms": rec.round_trip_ms,
            "round_trip_samples": est.round_trip_samples,
            "reported_ms": rec.reported_ms if math.isfinite(est.reported_s) else None,  # unknown, not 0
            "extra_ms": rec.extra_ms if math.isfinite(extra_ms) else None,
            "spread_ms": rec.spread_ms,
            "clicks_found": rec.clicks,
            "clicks_played": est.clicks_played,
            "sample_rate": est.sample_rate,
        }
    else:
        import sys

        from livedance.calibration.latency import SoundDevicePlayer, StreamTaps, TapConfig, TapSession
        from livedance.errors import AudioError, DeviceNotFoundError

        tcfg = TapConfig(bpm=bpm, beats=beats, lead_in_s=lead_in, discard_first=discard)
        tcfg.validate()
        player = None
        if not visual:
            try:
                player = SoundDevicePlayer(output, sample_rate=sample_rate)
            except (DeviceNotFoundError, AudioError) as err:
                if output is not None:
                    raise
                typer.echo(f"No output device ({err}); printing the beats instead (--visual).", err=True)
        with StreamTaps(sys.stdin) as taps:
            run = TapSession(tcfg, taps, player=player, echo=lambda s: typer.echo(s, err=True)).run()
        est = run.estimate
        rec = TapRecord(
            offset_ms=est.offset_ms,
            spread_ms=est.spread_ms,
            taps=est.n_taps,
            kept=est.n_kept,
            bpm=float(bpm),
            mode=run.mode,
            device=run.device,
            when=_now(),
        )
        if run.mode == "audio":
            cfg_user.tap = rec
            cfg_user.output_latency_ms = rec.offset_ms
        else:
            cfg_user.visual_tap = rec
        result = {
            "mode": f"tap-{run.mode}",
            "offset_ms": rec.offset_ms,
            "spread_ms": rec.spread_ms,
            "taps": rec.taps,
            "kept": rec.kept,
            "outliers": est.n_outliers,
            "warmup_dropped": est.n_discarded,
            "bpm": rec.bpm,
        }
    path = save_user_config(cfg_user, config_file) if save else None
    result["saved_to"] = str(path) if path else None
    result["output_latency_ms"] = cfg_user.output_latency_ms
    result["input_latency_ms"] = cfg_user.input_latency_ms
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_result(result)


def _print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Latency calibration ({result['mode']})", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key in ("mode", "saved_to"):
            continue
        if value is None:
            text = "n/a"
        elif isinstance(value, float):
            text = f"{value:.1f}" if math.isfinite(value) else "n/a"
        else:
            text = str(value)
        table.add_row(key, text)
    console = Console()
    console.print(table)
    if result["mode"] == "tap-visual":
        console.print(
            "Visual mode measures keyboard + display + reaction, not audio latency; output_latency_ms is unchanged."
        )
    if result.get("saved_to"):
        from livedance.calibration.user_config import config_path

        read = Path(result["saved_to"]) == config_path().expanduser().resolve()
        console.print(f"Saved to {result['saved_to']}" + (" (livedance perform reads it)." if read else
                      f" (livedance perform reads {config_path()}; set LIVEDANCE_CONFIG to use this file)."),
                      highlight=False)


@calibrate_app.command("show")
def show_command(
    config_file: Optional[Path] = typer.Option(None, "--config", help="Config file (default: the user config)."),
) -> None:
    """Print the user config (JSON) and the file it comes from."""
    from livedance.calibration.user_config import config_exists, config_path, load_user_config

    path = config_file.expanduser() if config_file is not None else config_path()
    cfg = load_user_config(path)
    typer.echo(f"# {path}{'' if config_exists(path) else ' (not written yet: defaults)'}")
    typer.echo(json.dumps(cfg.to_dict(), indent=2))


@calibrate_app.command("set")
def set_command(
    output_ms: Optional[float] = typer.Option(None, "--output-ms", min=-2000.0, max=2000.0,
                                              help="Unreported output latency to store, milliseconds (-2000..2000): how "
                                              "much later than PortAudio's DAC time the room hears playback (driver "
                                              "buffers, Bluetooth, a PA). It becomes perform's default --audio-delay-ms "
                                              "with --play. The delay from a frame leaving livedance to the avatar "
                                              "showing it is not this: that is perform --latency-ms."),
    input_ms: Optional[float] = typer.Option(None, "--input-ms", min=-2000.0, max=2000.0,
                                             help="Unreported input latency to store, milliseconds (-2000..2000): how "
                                             "much earlier than PortAudio's capture time a sound reached the input. "
                                             "perform with an input device then defaults --audio-delay-ms to minus it."),
    hip_height: Optional[float] = typer.Option(None, "--hip-height", min=0.2, max=5.0, help="Your avatar's standing hip (pelvis) height, "
                                               "metres (0.2..5): perform then scales the dancer's travel over VMC by it "
                                               "over the SMPL-X body's 0.95 m, so the feet do not slide (--travel-scale "
                                               "overrides it)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="Config file (default: the user config)."),
) -> None:
    """Store latencies measured some other way (e.g. with jack_iodelay or a camera), and the avatar's hip height.

    Example: livedance calibrate set --output-ms 40 --hip-height 0.81
    """
    from livedance.calibration.user_config import hip_height as check_hip, load_user_config, save_user_config
    from livedance.errors import ConfigError

    if output_ms is None and input_ms is None and hip_height is None:
        raise ConfigError("give --output-ms, --input-ms and/or --hip-height")
    cfg = load_user_config(config_file)
    if hip_height is not None:
        cfg.avatar_hip_height_m = check_hip("--hip-height", "--hip-height", hip_height)
    if output_ms is not None:
        cfg.output_latency_ms = float(output_ms)
    if input_ms is not None:
        cfg.input_latency_ms = float(input_ms)
    path = save_user_config(cfg, config_file)
    hip = "" if cfg.avatar_hip_height_m is None else f", avatar hip height {cfg.avatar_hip_height_m:g} m"
    typer.echo(f"Saved to {path}: output {cfg.output_latency_ms:g} ms, input {cfg.input_latency_ms:g} ms{hip}")
