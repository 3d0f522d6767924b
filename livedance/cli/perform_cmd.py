"""``livedance perform``: listen to music and dance an avatar to it, live (see docs/perform.md)."""

from __future__ import annotations

import math

from pathlib import Path
from typing import List, Optional

import typer

from livedance.cli import app

#: Default UDP port of the OSC controls.
DEFAULT_CONTROL_PORT = 39570


def _udp_port_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _status_text(stats, beat, t_run: float, link: bool = False, style: str | None = None,
                 bad_controls: int = 0) -> str:
    bpm = f"{beat.bpm:5.1f}" if beat.bpm > 0 else "  -  "
    state = "LOST" if beat.lost else ("silence" if beat.silent else "music")
    errs = stats.send_errors + sum(stats.sink_errors.values())
    line = (
        f"[bold]{t_run:6.1f} s[/]  bpm {bpm}  conf {beat.confidence:4.2f}  {state:<7}  "
        f"frames {stats.frames_sent}  misses {stats.misses}"
    )
    if errs:
        line += f"  send errors {errs}"
    if stats.fallback:
        line += "  [yellow]fallback[/]"
    if link:
        line += "  link"
    if style:
        line += f"  style {style}"
    if bad_controls:
        line += f"  [yellow]bad controls {bad_controls}[/]"
    return line


def _controls_text(controls) -> str:
    """The summary line of the OSC controls (a :class:`~livedance.live.controls.ControlState`)."""
    line = f"OSC controls: {controls.received} received, {controls.malformed} malformed (ignored)"
    return line + ("; the first is in the warning above" if controls.malformed else "")


def _report_recordings(console, record, st) -> None:
    """One line per recording, with its own counts: its frames, or what went wrong and how to recover (never a
    silent loss)."""
    from livedance.bridges.npz_record import parts_dir

    for p in record:
        path = Path(p).expanduser()  # (the recorders write the checked path: ~ expanded, absolute)
        counts = st.recordings
        frames, dropped, errors = counts.get(str(path.resolve()), counts.get(str(path), counts.get(str(p), (0, 0, 0))))
        parts = parts_dir(path)
        if path.suffix.lower() == ".npz" and parts.exists():
            console.print(f"[red]{p} was not merged; its frames are in {parts}: run "
                          f"livedance.bridges.npz_record.recover_npz('{p}')[/]", highlight=False)
        elif not path.exists():
            console.print(f"[red]{p} was not written ({errors} recording errors)[/]", highlight=False)
        elif dropped or errors:
            console.print(f"[yellow]recorded {p}: {frames} frames; {dropped} dropped (the disk could not keep up), "
                          f"{errors} write errors[/]", highlight=False)
        else:
            console.print(f"recorded {p}: {frames} frames", highlight=False)


def _style_text(gen) -> str | None:
    """The generator's style for the status line: ``"tango"``, ``"tango x1.5"`` off the default strength, or None."""
    style = getattr(gen, "style", None)
    if style is None:
        return None
    lam = getattr(gen, "style_strength", 1.0)
    return style if lam == 1.0 else f"{style} x{lam:g}"


@app.command("perform")
def perform_command(
    source: Optional[str] = typer.Argument(
        None,
        help="Audio file (played at real-time pace), 'demo' (the bundled song excerpt), input device (index or name; default: the default "
        "input), jack:<client> or jack:<client>:<port>.",
    ),
    play: bool = typer.Option(False, "--play", help="Play the audio file aloud (default output device)."),
    input_channels: Optional[str] = typer.Option(
        None, "--input-channels", help="Listen to these channels of the input device, numbered from 1 as on the "
        "interface, averaged to mono: e.g. 3,4 for a line in on inputs 3-4, or 1 for a mic on input 1 alone "
        "(default: the first two, averaged; `livedance devices` lists each device's channel count)."),
    vmc: str = typer.Option("127.0.0.1:39539", "--vmc", help="VMC receiver HOST:PORT (Unity, VSeeFace, Warudo, Unreal)."),
    no_vmc: bool = typer.Option(False, "--no-vmc", help="Do not send VMC."),
    osc: Optional[str] = typer.Option(None, "--osc", help="Raw OSC receiver HOST:PORT for VJ tools (TouchDesigner, Resolume)."),
    osc_layout: str = typer.Option(
        "vector", "--osc-layout", help="Raw OSC: vector (one message per quantity: /livedance/head/pos x y z) or "
        "scalar (one float per address: /livedance/head/pos/x; TouchDesigner channel names that need no guessing)."),
    osc_prefix: str = typer.Option("/livedance", "--osc-prefix", help="Raw OSC: address prefix (e.g. /vj/dancer1, so "
                                   "several dancers share one port)."),
    osc_joints: Optional[str] = typer.Option(
        None, "--osc-joints", help="Raw OSC: comma-separated SMPL-X joints to send (default: all 55), e.g. "
        "pelvis,head,left_wrist,right_wrist to cut the traffic."),
    osc_no_rotations: bool = typer.Option(False, "--osc-no-rotations", help="Raw OSC: send positions only (no /rot)."),
    record: List[str] = typer.Option([], "--record", help="Record the output to OUT.bvh or OUT.npz (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing recordings."),
    preview: bool = typer.Option(False, "--preview", help="Serve the web preview (http://127.0.0.1:8765/)."),
    preview_port: int = typer.Option(8765, "--preview-port", help="Port of the web preview."),
    fps: float = typer.Option(60.0, "--fps", help="Output frame rate, frames per second (1..1000; 60 for Unity / "
                              "VSeeFace, match the engine's tick for Unreal Live Link)."),
    latency_ms: float = typer.Option(
        0.0, "--latency-ms",
        help="Visual latency in ms: from a frame's send to its appearing on screen (network + the avatar's "
        "render), 0..2000.",
    ),
    audio_delay_ms: Optional[float] = typer.Option(
        None, "--audio-delay-ms",
        help="How much later than PortAudio's timing the room hears the music, ms (signed, -2000..2000). Default, "
        "from `livedance calibrate`: the output latency when livedance plays the file (--play), minus the input "
        "latency for an input device, 0 for a file paced without sound.",
    ),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds (default: until "
                                             "the file ends, or Ctrl-C / SIGTERM)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model to dance with: livedance or baseline (the shipped "
                                        "weights), or a weights stem (PATH of PATH.json + PATH.safetensors). Default: the "
                                        "shipped livedance model, or the procedural dancer if it cannot load; a --model "
                                        "that cannot load is an error."),
    procedural: bool = typer.Option(False, "--procedural", help="Use the procedural dancer, not the learned model."),
    backend: str = typer.Option(
        "onnx", "--backend",
        help="Engine of the learned model: onnx (ONNX Runtime on the CPU, the default), torch, or tensorrt (GPU hosts, "
        "docs/gpu.md). A chosen engine that cannot open is an error at start, never a silent fallback.",
    ),
    device: str = typer.Option("cpu", "--device", help="torch device for --backend torch: cpu or cuda (mamba-ssm kernels if installed)."),
    cuda_graph: bool = typer.Option(
        False, "--cuda-graph", help="With --backend torch --device cuda: replay each model step as one captured CUDA graph "
        "(1.8 ms per step on an H100 instead of 12.7 ms eager; docs/gpu.md).",
    ),
    seed: int = typer.Option(
        0, "--seed", min=0,
        help="Sampling seed of the learned dancer: the same song and seed dance alike, another seed dances it differently.",
    ),
    profile: str = typer.Option("vrm0", "--profile", help="Avatar profile for VMC: vrm0, vrm1, mixamo, ue_mannequin or a JSON path."),
    absent_bones: Optional[str] = typer.Option(
        None, "--absent-bones", help="HumanBodyBones the avatar lacks, comma-separated (e.g. UpperChest or "
        "LeftShoulder,RightShoulder: optional in VRM): their rotation is folded into their children, so the neck, "
        "head and arms still point the right way on such an avatar."),
    travel_scale: Optional[float] = typer.Option(
        None, "--travel-scale", min=0.05, max=20.0,
        help="VMC: factor on the dancer's travel and squats sent on the root, the avatar's hip height over the "
        "SMPL-X body's 0.95 m (e.g. 0.85 for an avatar with 0.81 m hip height), so its feet do not slide. Default: "
        "from the hip height stored by `livedance calibrate set --hip-height M`, else 1."),
    control_port: Optional[int] = typer.Option(
        None, "--control-port",
        help=f"UDP port of the OSC controls, 127.0.0.1 only (default {DEFAULT_CONTROL_PORT}, skipped with a warning if busy).",
    ),
    no_controls: bool = typer.Option(False, "--no-controls", help="Do not listen for OSC controls."),
    link: bool = typer.Option(False, "--link", help="Join the Ableton Link session: while it has peers, its tempo and phase win."),
    intro_s: float = typer.Option(
        4.0, "--intro-s", min=0.0,
        help="On-beat intro: for this many seconds after the music starts the procedural dancer (on the beat as soon as "
        "the tracker is) leads, then the learned dance takes over in a beat-stepped cross-fade. 0 turns it off.",
    ),
    stage_radius: float = typer.Option(
        1.0, "--stage-radius", min=0.0,
        help="Keep the learned dancer's pelvis within this many metres of where it started (the model travels like "
        "the ballroom dances it learned from; a VMC avatar would walk out of view). 0 turns the leash off.",
    ),
    accent: float = typer.Option(
        0.15, "--accent", min=0.0, max=0.5,
        help="Beat accent of the learned dance: its shown speed dips to 1 - ACCENT on every music beat and rises to "
        "1 + ACCENT between beats, the way a dancer hits the beat. 0 turns it off.",
    ),
    pose_guard: bool = typer.Option(
        False, "--pose-guard", help="Pose guard for the learned dancer: a step that holds a pose the training dances "
        "hardly hold (a leg lifted for seconds, the trunk near horizontal) is run again with fresh, hotter noise "
        "(up to 4 runs, about 5 ms each). Off by default.",
    ),
    style: Optional[str] = typer.Option(
        None, "--style", help="Dance style from the start (change it live with /livedance/style): for the shipped "
        "learned dancer cha-cha, rumba, tango or waltz (a code prior on its sampler; default: its own choice), for "
        "--procedural groove, bounce or wave.",
    ),
    style_strength: float = typer.Option(
        1.0, "--style-strength", min=0.0, max=2.0, help="How hard the learned dancer's style pulls, 0..2 (1 = the "
        "prior-shift correction; 2 pushes harder, 0 keeps the style but does not pull). Live: /livedance/style/strength.",
    ),
    pace: Optional[float] = typer.Option(
        None, "--pace", min=0.05, max=3.0, help="The learned dancer's pace from the start, m/s of limb speed about the "
        "pelvis (the Tang train dances: 0.25-0.87), for a model trained with --pace; default: its own draw. Live: "
        "/livedance/pace (0 = back to its own).",
    ),
    no_warp: bool = typer.Option(
        False, "--no-warp", help="Show the learned model's motion as generated, without the beat-synchronous playback warp.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No live status line."),
) -> None:
    """Listen to music and dance an avatar to it, live: VMC/OSC out, optional recordings.

    Ctrl-C or SIGTERM stops cleanly (recordings are flushed); a file source ends at its end.

    Example: livedance perform song.ogg --play --preview --record take.bvh   (a mic: livedance perform; a JACK
    client: livedance perform jack:system)
    """
    import logging
    import time

    import numpy as np

    from rich.console import Console
    from rich.live import Live

    from livedance.bridges.shutdown import exit_on_sigterm, finishing
    from livedance.engine.base import apply_pace, apply_style
    from livedance.errors import ConfigError
    from livedance.live.intro import IntroConfig
    from livedance.live.performer import PerformConfig, Performer
    from livedance.live.stage import StageConfig
    from livedance.live.rest import default_rest_offsets
    from livedance.live.setup import (build_sinks, default_audio_delay_ms, default_travel_scale, load_generator,
                                      open_source, parse_endpoint, parse_input_channels, source_kind)
    from livedance.live.warp import WarpConfig

    console = Console(stderr=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if duration is not None and not duration > 0:
        raise ConfigError(f"--duration must be > 0 seconds, got {duration}")
    for opt, value in (("--intro-s", intro_s), ("--stage-radius", stage_radius)):
        if not math.isfinite(value):  # (typer's min=0 lets inf through)
            raise ConfigError(f"{opt} must be a finite number >= 0, got {value}")
    if preview_port != 8765 and not preview:
        raise ConfigError(f"--preview-port {preview_port} applies to the web preview: add --preview")
    if no_vmc and vmc != "127.0.0.1:39539":
        raise ConfigError(f"--vmc {vmc} and --no-vmc contradict each other: keep one")
    if no_controls and control_port is not None:
        raise ConfigError(f"--control-port {control_port} and --no-controls contradict each other: keep one")
    if travel_scale is None:
        travel_scale, travel_from = default_travel_scale()
    else:
        travel_from = "--travel-scale"
    port = None
    if not no_controls:
        port = control_port if control_port is not None else DEFAULT_CONTROL_PORT
        if control_port is None and not _udp_port_free(port):
            console.print(f"[yellow]OSC controls off: port {port} is busy (another livedance?); pass --control-port[/]")
            port = None
    cfg = PerformConfig(fps=fps, latency_s=float(latency_ms) / 1000.0,
                        audio_delay_s=0.0 if audio_delay_ms is None else float(audio_delay_ms) / 1000.0,
                        control_port=port, intro=IntroConfig(seconds=intro_s),
                        record_ticks=False,  # (the benchmark's jitter lists; a long show must not grow them)
                        stage=StageConfig(radius_m=stage_radius),
                        warp=WarpConfig(enabled=not no_warp, accent=accent))
    cfg.validate()
    # cheap checks first: a bad endpoint fails before the model loads or anything opens
    if not no_vmc:
        parse_endpoint(vmc, "--vmc")
    osc_options: dict = {}
    if osc is not None:
        parse_endpoint(osc, "--osc")
        osc_options = {"layout": osc_layout, "prefix": osc_prefix, "send_rotations": not osc_no_rotations}
        if osc_joints is not None:
            osc_options["joints"] = [j.strip() for j in osc_joints.split(",") if j.strip()]
        from livedance.bridges.osc_raw import RawOSCSender

        RawOSCSender.check_options(osc_prefix, osc_options.get("joints"), osc_layout)  # fails before the model loads
    elif (osc_layout, osc_prefix, osc_joints, osc_no_rotations) != ("vector", "/livedance", None, False):
        raise ConfigError("--osc-layout / --osc-prefix / --osc-joints / --osc-no-rotations apply to raw OSC: add "
                          "--osc HOST:PORT")
    gen, gen_desc = load_generator(model, procedural, backend=backend, device=device, cuda_graph=cuda_graph,
                                   pose_guard=pose_guard)
    gen.reset(seed)
    if style is not None or style_strength != 1.0:
        try:  # the default strength is left alone on a generator without one (the procedural dancer)
            apply_style(gen, style, None if style_strength == 1.0 and not hasattr(gen, "style_strength") else style_strength)
        except ConfigError as err:
            flags = (f"--style {style}" if style is not None else "") + (
                f" --style-strength {style_strength:g}" if style_strength != 1.0 else "")
            raise ConfigError(f"{flags.strip()}: {gen_desc}: {err}") from None
        if style is not None:
            gen_desc += f", style {style}" + (f" x{style_strength:g}" if style_strength != 1.0 else "")
    if pace is not None:
        try:
            apply_pace(gen, pace)
        except ConfigError as err:
            raise ConfigError(f"--pace {pace:g}: {gen_desc}: {err}") from None
        gen_desc += f", pace {pace:g} m/s"
    rest = default_rest_offsets()
    gen_rest = getattr(gen, "rest_offsets", None)  # a model's own skeleton, when it ships one
    if gen_rest is not None and np.shape(gen_rest) == (55, 3) and np.all(np.isfinite(gen_rest)):
        rest = np.asarray(gen_rest, np.float32)
    avatar = profile
    if absent_bones is not None:
        from livedance.calibration.profiles import load_profile

        names = [b.strip() for b in absent_bones.split(",") if b.strip()]
        if not names:
            raise ConfigError(f"--absent-bones {absent_bones!r}: expected HumanBodyBones names, e.g. UpperChest")
        avatar = load_profile(profile).with_absent(names)
    sinks = build_sinks(
        None if no_vmc else vmc, osc, list(record), preview, avatar, fps, rest,
        overwrite=overwrite, preview_port=preview_port, travel_scale=travel_scale, osc_options=osc_options,
    )
    performer = None
    try:
        src = open_source(source, play=play, input_channels=parse_input_channels(input_channels))
        if audio_delay_ms is None:  # the calibrated value for this kind of source
            delay_ms, delay_from = default_audio_delay_ms(source_kind(src, play))
            cfg.audio_delay_s = delay_ms / 1000.0
            cfg.validate()
        else:
            delay_ms, delay_from = audio_delay_ms, "--audio-delay-ms"
        link_grid = None
        if link:
            from livedance.beats.link import LinkBeatGrid

            link_grid = LinkBeatGrid()
        performer = Performer(src, sinks, gen, cfg, rest_offsets=rest, link=link_grid)
        names = ", ".join(s.name for s in sinks) or "no sinks"
        console.print(
            f"livedance perform: {getattr(src, 'path', None) or source or 'default input'} -> {names}; "
            f"{gen_desc}; {fps:g} fps; visual latency {latency_ms:g} ms; audio heard {delay_ms:+g} ms against its "
            f"stream time ({delay_from})"
            + ("" if no_vmc else f"; VMC travel x{travel_scale:.3g} ({travel_from})"), highlight=False,
        )
        with exit_on_sigterm():
            performer.start()
            if performer.control_port is not None:
                console.print(f"OSC controls on 127.0.0.1:{performer.control_port} (/livedance/energy, style, style/strength, pace, freeze, resume, nudge, accent)", highlight=False)
            t0 = time.perf_counter()
            if quiet:
                performer.run(duration)
            else:
                with Live(console=console, refresh_per_second=4, transient=False) as live:
                    performer.run(
                        duration,
                        on_status=lambda st: live.update(
                            _status_text(st, performer.beat(), time.perf_counter() - t0, performer.link_active,
                                         _style_text(gen), performer.controls.malformed)
                        ),
                    )
                if not console.is_terminal:
                    console.print()
    except KeyboardInterrupt:
        console.print("stopping (Ctrl-C)")
    finally:
        if performer is not None:
            def held(sig: str) -> None:
                console.print(f"{sig}: finishing the recordings first (send it again to abandon them)", highlight=False)

            with finishing(held if record else None):  # a second Ctrl-C / SIGTERM must not cut the npz merge short
                performer.stop()
                st = performer.stats()
                errs = st.send_errors
                console.print(
                    f"sent {st.frames_sent} frames, {st.misses} misses, {st.skipped_ticks} skipped ticks, "
                    f"{errs} send errors, {sum(st.sink_errors.values())} sink errors"
                    + (" (fell back to the procedural dancer)" if st.fallback else "")
                    + (f"; model: {st.bad_frames} bad frames replaced, {st.state_resets} state resets, "
                       f"{st.bad_inputs} steps with bad music input"
                       if st.bad_frames or st.state_resets or st.bad_inputs else ""),
                    highlight=False,
                )
                if performer.control_port is not None:
                    console.print(_controls_text(performer.controls), highlight=False)
                if getattr(gen, "style", None) is not None or performer.controls.unsupported:
                    console.print(f"style at the end: {_style_text(gen) or 'none'}; "
                                  f"{performer.controls.unsupported} style request(s) not applied", highlight=False)
                _report_recordings(console, record, st)
                if st.recording_fills:
                    console.print(f"{st.recording_fills} frames repeated in the BVH recordings where a tick had no frame "
                                  f"(the take stays in time with the music)", highlight=False)
                if st.recording_fills_capped:
                    console.print(f"[yellow]{st.recording_fills_capped} gap(s) in the BVH recordings were longer than "
                                  "the 10 s fill cap: the take is early against the music after them[/]")
        else:
            for s in sinks:
                try:
                    s.close()
                except Exception:  # noqa: BLE001
                    pass
