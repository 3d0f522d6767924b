"""``livedance devices``: the audio devices PortAudio sees (inputs and outputs), and JACK ports.

See docs/audio.md for how to pick a device (index, name, "jack:<client>") and connect JACK ports.
"""

from __future__ import annotations

import json

import typer

from livedance.cli import app


def render_devices(devices: list) -> object:
    """A ``rich.table.Table`` of :class:`~livedance.audio.devices.DeviceInfo` rows."""
    from rich.table import Table

    table = Table(title="Audio devices (PortAudio)", title_justify="left")
    table.add_column("index", justify="right")
    table.add_column("name")
    table.add_column("host API")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("default rate (Hz)", justify="right")
    table.add_column("default")
    for d in devices:
        marks = ", ".join(m for m, on in (("input", d.default_input), ("output", d.default_output)) if on)
        table.add_row(
            str(d.index),
            d.name,
            d.hostapi,
            str(d.max_input_channels),
            str(d.max_output_channels),
            f"{d.default_samplerate:g}",
            marks,
        )
    return table


@app.command("devices")
def devices_command(
    as_json: bool = typer.Option(False, "--json", help="Print the devices as a JSON list instead of a table."),
    jack_ports: bool = typer.Option(
        False, "--jack-ports", help="Also list the JACK ports and their connections (needs a running JACK server)."
    ),
) -> None:
    """List the audio input and output devices (index, name, host API, channels, default rate).

    Pick one for live input with its index or name (case-insensitive substring), or "jack:<client>" for a JACK client such as "jack:system".
    """
    from rich.console import Console

    from livedance.audio.devices import describe_devices, list_devices

    devices = list_devices()
    ports: dict[str, list[str]] | None = None
    if jack_ports:
        from livedance.audio import jack

        ports = jack.connections() if jack.server_running() else {}
    if as_json:
        payload: object = [d.to_dict() for d in devices]
        if ports is not None:
            payload = {"devices": payload, "jack_ports": ports}
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    if devices:
        console.print(render_devices(devices))
    else:
        console.print(describe_devices(devices, "input"))
    if ports is not None:
        if not ports:
            console.print("JACK: no server is running.")
        for port, linked in ports.items():
            console.print(f"{port}" + (f"  ->  {', '.join(linked)}" if linked else ""), highlight=False)
