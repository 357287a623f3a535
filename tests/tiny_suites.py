"""Suite files small enough for tests: a phantom at 32 px and a width-4 Unet trained for one epoch."""

from __future__ import annotations

import json

_TINY = """
[suite]
name = "{name}"
seeds = {seeds}

[data]
source = "phantom"
size_px = 32
subjects_per_vendor = 4
slices_per_subject = 2

[vendors]
source = "philips"
targets = {targets}

[splits]
source = {{ train = 2, val = 1, test = 1 }}
target = {{ train = 2, val = 1, test = 1 }}

[unet]
model_kwargs = {{ width = 4 }}
epochs = 1
{extra}
[scenarios]
run = {scenarios}
"""

TRANSLATOR = """
[translator]
steps = 2
check_every = 1
generator = { width = 4, n_blocks = 1 }
discriminator = { width = 4 }
"""


def tiny_text(
    name: str = "tiny",
    seeds: tuple[int, ...] = (0,),
    targets: tuple[str, ...] = ("siemens",),
    scenarios: tuple[str, ...] = ("clean", "histmatch"),
    extra: str = "",
) -> str:
    """TOML text of a tiny suite; ``extra`` is inserted as whole tables (e.g. ``TRANSLATOR``)."""
    return _TINY.format(
        name=name,
        seeds=json.dumps(list(seeds)),
        targets=json.dumps(list(targets)),
        scenarios=json.dumps(list(scenarios)),
        extra=extra,
    )
