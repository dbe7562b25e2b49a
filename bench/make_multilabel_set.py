"""A multi-label image set from single-label class folders: `python -m bench.make_multilabel_set`.

    python -m bench.make_multilabel_set SOURCE_DIR OUT_DIR [--per_pair 25]

Each new image is two photos of different classes side by side (each squeezed to half the width),
labelled with both classes; it is written into both class folders (the Multi-label-Inception-net
layout that `retrain --multi_label` reads). Every source photo is used at most once, so no photo
is shared between images that may fall in different splits.
"""
import argparse
import itertools
import os
import random
from typing import Dict, List

from PIL import Image

SIZE = 224


def _photos(source: str) -> Dict[str, List[str]]:
    return {name: sorted(os.path.join(source, name, f)
                         for f in os.listdir(os.path.join(source, name))
                         if f.lower().endswith(('.jpg', '.jpeg')))
            for name in sorted(os.listdir(source)) if os.path.isdir(os.path.join(source, name))}


def _half(path: str) -> Image.Image:
    return Image.open(path).convert('RGB').resize((SIZE // 2, SIZE))


def make(source: str, out: str, per_pair: int, seed: int = 0) -> int:
    """Writes per_pair images for each pair of classes; returns how many were written."""
    photos = _photos(source)
    rng = random.Random(seed)
    for paths in photos.values():
        rng.shuffle(paths)
    written = 0
    for first, second in itertools.combinations(sorted(photos), 2):
        for i in range(per_pair):
            if not photos[first] or not photos[second]:
                break
            image = Image.new('RGB', (SIZE, SIZE))
            image.paste(_half(photos[first].pop()), (0, 0))
            image.paste(_half(photos[second].pop()), (SIZE // 2, 0))
            name = f'{first}_{second}_{i:03d}.jpg'
            for label in (first, second):
                os.makedirs(os.path.join(out, label), exist_ok=True)
                image.save(os.path.join(out, label, name), quality=90)
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.make_multilabel_set',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('source')
    parser.add_argument('out')
    parser.add_argument('--per_pair', type=int, default=25)
    args = parser.parse_args()
    print(f'{make(args.source, args.out, args.per_pair)} images written to {args.out}')


if __name__ == '__main__':
    main()
