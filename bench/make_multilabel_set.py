"""A multi-label image set from single-label class folders: `python -m bench.make_multilabel_set`.

    python -m bench.make_multilabel_set SOURCE_DIR OUT_DIR [--layout side_by_side] [--per_pair 25]
    python -m bench.make_multilabel_set SOURCE_DIR OUT_DIR --layout tinted [--colours red,blue]

side_by_side: each new image is two photos of different classes side by side (each squeezed to
half the width), labelled with both classes; per_pair images for each pair of classes.
tinted: each photo once, turned to grey and toned into one of the colours (its mid-tones become
the colour, black and white stay), in turn within each class so every (class, colour) pair has as
many images; labelled with its class and its colour: the structure of a colour_item set.
Each new image is written into the folder of each of its labels (the Multi-label-Inception-net
layout that `retrain --multi_label` reads). Every source photo is used at most once, so no photo
is shared between images that may fall in different splits.
"""
import argparse
import itertools
import os
import random
from typing import Dict, Iterator, List, Sequence, Tuple

from PIL import Image, ImageOps

SIZE = 224
# Mid-tone of each colour name: what a person would call that colour.
COLOURS = {'red': (215, 25, 25), 'green': (30, 160, 40), 'blue': (35, 65, 215),
           'yellow': (225, 195, 20), 'purple': (140, 40, 180)}
# (image, its labels, its file name)
Made = Tuple[Image.Image, Tuple[str, ...], str]


def _photos(source: str) -> Dict[str, List[str]]:
    return {name: sorted(os.path.join(source, name, f)
                         for f in os.listdir(os.path.join(source, name))
                         if f.lower().endswith(('.jpg', '.jpeg')))
            for name in sorted(os.listdir(source)) if os.path.isdir(os.path.join(source, name))}


def _half(path: str) -> Image.Image:
    return Image.open(path).convert('RGB').resize((SIZE // 2, SIZE))


def side_by_side(photos: Dict[str, List[str]], per_pair: int) -> Iterator[Made]:
    """per_pair images of two photos for each pair of classes, while photos last."""
    for first, second in itertools.combinations(sorted(photos), 2):
        for i in range(per_pair):
            if not photos[first] or not photos[second]:
                break
            image = Image.new('RGB', (SIZE, SIZE))
            image.paste(_half(photos[first].pop()), (0, 0))
            image.paste(_half(photos[second].pop()), (SIZE // 2, 0))
            yield image, (first, second), f'{first}_{second}_{i:03d}.jpg'


def tinted(photos: Dict[str, List[str]], colours: Sequence[str]) -> Iterator[Made]:
    """Every photo toned into one colour, the colours in turn within each class."""
    for name, paths in sorted(photos.items()):
        for i, path in enumerate(paths):
            colour = colours[i % len(colours)]
            grey = ImageOps.grayscale(Image.open(path).convert('RGB'))
            image = ImageOps.colorize(grey, black=(0, 0, 0), white=(255, 255, 255),
                                      mid=COLOURS[colour])
            yield image, (name, colour), f'{name}_{colour}_{i:03d}.jpg'


def make(source: str, out: str, per_pair: int = 25, seed: int = 0, layout: str = 'side_by_side',
         colours: Sequence[str] = ('red', 'green', 'blue', 'yellow')) -> int:
    """Writes the images of the layout into their labels' folders; returns how many."""
    photos = _photos(source)
    rng = random.Random(seed)
    for paths in photos.values():
        rng.shuffle(paths)
    made = side_by_side(photos, per_pair) if layout == 'side_by_side' else tinted(photos, colours)
    written = 0
    for image, labels, name in made:
        for label in labels:
            os.makedirs(os.path.join(out, label), exist_ok=True)
            image.save(os.path.join(out, label, name), quality=90)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.make_multilabel_set',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('source')
    parser.add_argument('out')
    parser.add_argument('--layout', choices=('side_by_side', 'tinted'), default='side_by_side')
    parser.add_argument('--per_pair', type=int, default=25, help='side_by_side: images a pair')
    parser.add_argument('--colours', default='red,green,blue,yellow',
                        help=f'tinted: comma-separated, of {", ".join(COLOURS)}')
    args = parser.parse_args()
    colours = args.colours.split(',')
    unknown = sorted(set(colours) - set(COLOURS))
    if unknown:
        parser.error(f'unknown colours {", ".join(unknown)}: choose from {", ".join(COLOURS)}')
    written = make(args.source, args.out, args.per_pair, layout=args.layout, colours=colours)
    print(f'{written} images written to {args.out}')


if __name__ == '__main__':
    main()
