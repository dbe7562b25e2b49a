"""A flower_photos-sized image set from a smaller one: `python -m bench.make_image_set SRC DST`.

The classic tutorials ran on the 3,670 photos of flower_photos (daisy 633, dandelion 898, roses 641,
sunflowers 699, tulips 799). Without internet access only a 500-photo sample is here, so this
fills each class of DST up to those counts with copies of the photos of the class of the same
name in SRC, under new names (`<name>_copy<k>.jpg`). Copies, not re-encoded variants: decoding
costs what it costs on the originals (progressive JPEGs decode several times slower than the
baseline ones an encoder writes by default), so caching does the work it does on the real set.
Timing only: copies of one photo land in different splits, so accuracy here overstates the real
one.
"""
import argparse
import os
import shutil
import sys
from typing import Optional, Sequence

FLOWER_PHOTOS_COUNTS = {'daisy': 633, 'dandelion': 898, 'roses': 641, 'sunflowers': 699,
                        'tulips': 799}


def fill_class(source: str, target: str, count: int) -> int:
    """Copies the photos of `source` into `target`, again and again until there are `count`."""
    names = sorted(n for n in os.listdir(source) if n.lower().endswith(('.jpg', '.jpeg')))
    if not names:
        raise SystemExit(f'make_image_set: no JPEG photos in {source}')
    os.makedirs(target, exist_ok=True)
    for i in range(count):
        name = names[i % len(names)]
        copy = i // len(names)
        stem, extension = os.path.splitext(name)
        shutil.copyfile(os.path.join(source, name), os.path.join(
            target, name if copy == 0 else f'{stem}_copy{copy}{extension}'))
    return count


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.make_image_set',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('source', help='class folders of photos, e.g. flower_photos_small')
    parser.add_argument('target', help='where to write the new set (must not exist)')
    args = parser.parse_args(argv)
    if os.path.exists(args.target):
        print(f'make_image_set: {args.target} exists already', file=sys.stderr)
        return 2
    total = sum(fill_class(os.path.join(args.source, name), os.path.join(args.target, name),
                           count) for name, count in FLOWER_PHOTOS_COUNTS.items())
    print(f'Wrote {total} photos to {args.target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
