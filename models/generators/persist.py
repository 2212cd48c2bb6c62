"""Save and load any candidate generator without pickle: `generator.json` names the class, the class's
own `save`/`load` write and read the numpy, scipy and JSON (torch: state_dict) files beside it.

Only classes of the registry below can be loaded (a file never names a module to import). Each entry is
a module path imported on first use, so loading a popularity model never imports torch.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

REGISTRY: dict[str, str] = {
    "PopularityGenerator": "models.generators.popularity",
    "EASEGenerator": "models.generators.item_item",
    "RP3betaGenerator": "models.generators.item_item",
    "ALSGenerator": "models.generators.factors",
    "ContentGenerator": "models.generators.content",
    "SpectralGenerator": "models.generators.spectral",
    "BlendGenerator": "models.generators.blend",
    "TwoTowerGenerator": "models.generators.two_tower",
}
MANIFEST = "generator.json"
FORMAT_VERSION = 1


def save_generator(generator: Any, directory: Path) -> Path:
    """Write `generator` under `directory` (created); the class must be in the registry."""
    name = type(generator).__name__
    if name not in REGISTRY:
        raise ValueError(f"{name} is not a registered generator class ({', '.join(sorted(REGISTRY))})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generator.save(directory)
    (directory / MANIFEST).write_text(json.dumps({"class": name, "format": FORMAT_VERSION}))
    return directory


def generator_class(name: str) -> Any:
    """The registered class called `name`, its module imported now."""
    if name not in REGISTRY:
        raise ValueError(f"unknown generator class {name!r} ({', '.join(sorted(REGISTRY))})")
    return getattr(importlib.import_module(REGISTRY[name]), name)


def load_generator(directory: Path) -> Any:
    """The generator `save_generator` wrote under `directory`."""
    directory = Path(directory)
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{directory}: generator format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
    return generator_class(str(manifest["class"])).load(directory)
