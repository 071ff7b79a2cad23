"""Write a tiny, randomly initialised V1-shaped generator export: the stand-in for universal-v1
that lets `TINY=1 finetune_allison.sh` run end to end on a CPU in a minute."""
from __future__ import annotations

import sys

import torch

from hifigan import Generator, save_generator
from hifigan.config import preset, with_generator_channels


def main(path: str, channels: int = 16) -> None:
    torch.manual_seed(0)
    config = with_generator_channels(preset("v1"), channels)
    config.name = f"tiny-v1-{channels}"
    save_generator(path, Generator(config.generator).state_dict(), config)
    print(f"wrote a {channels}-channel V1-shaped generator to {path}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
