"""What every baseline says the same way: the footnote that it is this harness's reimplementation, and the
image-size rule of networks with two stride-2 down-samplings and two x2 up-samplings."""

from __future__ import annotations


def reimplementation_note(label: str, departures: tuple[str, ...] = ()) -> str:
    """The first footnote of every reimplemented baseline's rows (paper, Sec. 4: the authors' code was used),
    with the departures from that code that remain in every run (docs/baselines.md has one table per method)."""
    note = f"{label} reimplemented in this harness (the paper ran the authors' code)"
    if departures:
        note += "; where it departs from that code (docs/baselines.md): " + "; ".join(departures)
    return note


def image_size_problems(image_size: int, minimum: int, why: str = "") -> list[str]:
    """[] when `image_size` suits the networks; else the problem, for `check_settings`."""
    if image_size % 4 or image_size < minimum:
        return [f"image size {image_size} must be a multiple of 4 and at least {minimum}{f' ({why})' if why else ''}"]
    return []
