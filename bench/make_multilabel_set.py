"""A multi-label image set from single-label class folders: `python -m bench.make_multilabel_set`.

    python -m bench.make_multilabel_set SOURCE_DIR OUT_DIR [--layout side_by_side] [--per_pair 25]
    python -m bench.make_multilabel_set SOURCE_DIR OUT_DIR --layout tinted [--colours red,blue]
    python -m bench.make_multilabel_set SOURCE_DIR OUT_DIR --layout patterned

side_by_side: each new image is two photos of different classes side by side (each squeezed to
half the width), labelled with both classes; per_pair images for each pair of classes.
tinted: each photo once, turned to grey and toned into one of the colours (its mid-tones become
the colour, black and white stay), in turn within each class so every (class, colour) pair has as
many images; labelled with its class and its colour: the structure of a colour_item set.
patterned: each photo toned as in tinted (its blacks and whites as well), then left solid or
covered with white stripes, checks or dots; labelled with its colour and its pattern, not its
flower: the attributes of a clothing set, which a linear layer tells apart almost perfectly (the
flowers hold tinted near mAP 0.85).
Each new image is written into the folder of each of its labels (the Multi-label-Inception-net
layout that `retrain --multi_label` reads). Every source photo is used at most once, so no photo
is shared between images that may fall in different splits.
"""
import argparse
import itertools
import os
import random
from typing import Dict, Iterator, List, Sequence, Tuple

from PIL import Image, ImageDraw, ImageOps

SIZE = 224
# Mid-tone of each colour name: what a person would call that colour.
COLOURS = {'red': (215, 25, 25), 'green': (30, 160, 40), 'blue': (35, 65, 215),
           'yellow': (225, 195, 20), 'purple': (140, 40, 180)}
# A fabric's pattern, as clothing sets label it ('solid': none drawn).
PATTERNS = ('solid', 'striped', 'checked', 'dotted')
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


def _toned(path: str, colour: str, strong: bool = False) -> Image.Image:
    """The photo in shades of `colour`; `strong`: its blacks half the colour and its whites
    half-way from it to white, so that even a dark or pale photo shows the colour."""
    grey = ImageOps.grayscale(Image.open(path).convert('RGB'))
    mid = COLOURS[colour]
    black, white = (((0, 0, 0), (255, 255, 255)) if not strong else
                    (tuple(c // 2 for c in mid), tuple((c + 255) // 2 for c in mid)))
    return ImageOps.colorize(grey, black=black, white=white, mid=mid)


def tinted(photos: Dict[str, List[str]], colours: Sequence[str]) -> Iterator[Made]:
    """Every photo toned into one colour, the colours in turn within each class."""
    for name, paths in sorted(photos.items()):
        for i, path in enumerate(paths):
            colour = colours[i % len(colours)]
            yield _toned(path, colour), (name, colour), f'{name}_{colour}_{i:03d}.jpg'


def _pattern(image: Image.Image, pattern: str, rng: random.Random) -> None:
    """White `pattern` over the whole image, its period 1/8 to 1/16 of the shorter side."""
    period = max(4, int(min(image.size) / rng.uniform(8, 16)))
    width, height = image.size
    draw, white = ImageDraw.Draw(image), (255, 255, 255)
    offset = rng.randrange(period)
    if pattern == 'striped':
        for at in range(offset - height, max(width, height) * 2, period):
            draw.line([(at, 0), (at + height, height)], fill=white, width=max(1, period // 4))
    elif pattern == 'checked':
        for row, top in enumerate(range(offset - period, height, period)):
            for column, left in enumerate(range(offset - period, width, period)):
                if (row + column) % 2:
                    draw.rectangle((left, top, left + period - 1, top + period - 1), fill=white)
    elif pattern == 'dotted':
        radius = max(1, period // 5)
        for top in range(offset, height, period):
            for left in range(offset, width, period):
                draw.ellipse((left - radius, top - radius, left + radius, top + radius),
                             fill=white)


def patterned(photos: Dict[str, List[str]], colours: Sequence[str],
              rng: random.Random) -> Iterator[Made]:
    """Every photo toned into one colour with a pattern over it, each (colour, pattern) in
    turn."""
    for i, path in enumerate(p for _, paths in sorted(photos.items()) for p in paths):
        colour, pattern = colours[i % len(colours)], PATTERNS[i // len(colours) % len(PATTERNS)]
        image = _toned(path, colour, strong=True)
        _pattern(image, pattern, rng)
        yield image, (colour, pattern), f'{colour}_{pattern}_{i:03d}.jpg'


def make(source: str, out: str, per_pair: int = 25, seed: int = 0, layout: str = 'side_by_side',
         colours: Sequence[str] = ('red', 'green', 'blue', 'yellow')) -> int:
    """Writes the images of the layout into their labels' folders; returns how many."""
    photos = _photos(source)
    rng = random.Random(seed)
    for paths in photos.values():
        rng.shuffle(paths)
    made = {'side_by_side': lambda: side_by_side(photos, per_pair),
            'tinted': lambda: tinted(photos, colours),
            'patterned': lambda: patterned(photos, colours, rng)}[layout]()
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
    parser.add_argument('--layout', choices=('side_by_side', 'tinted', 'patterned'),
                        default='side_by_side')
    parser.add_argument('--per_pair', type=int, default=25, help='side_by_side: images a pair')
    parser.add_argument('--colours', default='red,green,blue,yellow',
                        help=f'tinted, patterned: comma-separated, of {", ".join(COLOURS)}')
    args = parser.parse_args()
    colours = args.colours.split(',')
    unknown = sorted(set(colours) - set(COLOURS))
    if unknown:
        parser.error(f'unknown colours {", ".join(unknown)}: choose from {", ".join(COLOURS)}')
    written = make(args.source, args.out, args.per_pair, layout=args.layout, colours=colours)
    print(f'{written} images written to {args.out}')


if __name__ == '__main__':
    main()
