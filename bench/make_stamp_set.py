"""Photos of other things for `bench.bench_unknown --outside`, from a package any Debian has:
`python -m bench.make_stamp_set STAMPS DST`.

    apt-get download tuxpaint-stamps-default && dpkg-deb -x tuxpaint-stamps-default_*.deb x
    python -m bench.make_stamp_set x/usr/share/tuxpaint/stamps stamps
    python -m retrain --image_dir stamps --bottleneck_dir bn_stamps --how_many_training_steps 0

Tux Paint's stamps are photos of objects cut out on a transparent background (animals, food,
vehicles, houses ...), with drawn ones in `cartoon` folders. Each photo of the categories below
is laid on a mid-grey background and saved as a JPEG in DST/<category>/: 325 images. Plants and
the seasonal stamps are left out (flowers among them would be in-domain for a flower model).
None of the unknown judgement's choices was made on them: they measure it on images no choice
has seen.
"""
import argparse
import glob
import os
import sys
from typing import Optional, Sequence

from PIL import Image

CATEGORIES = ('animals', 'food', 'vehicles', 'household', 'town', 'clothes', 'sports',
              'hobbies', 'space', 'military')
BACKGROUND = (128, 128, 128, 255)


def write_set(stamps: str, target: str) -> int:
    """Writes the photos of CATEGORIES below `stamps` to `target`; returns how many."""
    written = 0
    for category in CATEGORIES:
        os.makedirs(os.path.join(target, category), exist_ok=True)
        for path in sorted(glob.glob(os.path.join(stamps, category, '**', '*.png'),
                                     recursive=True)):
            if 'cartoon' in path.split(os.sep):
                continue
            with Image.open(path) as stamp:
                photo = Image.new('RGBA', stamp.size, BACKGROUND)
                photo.alpha_composite(stamp.convert('RGBA'))
            name = os.path.splitext(os.path.basename(path))[0] + '.jpg'
            photo.convert('RGB').save(os.path.join(target, category, name), quality=92)
            written += 1
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.make_stamp_set',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('stamps', help="Tux Paint's stamps folder (usr/share/tuxpaint/stamps)")
    parser.add_argument('target', help='where to write the class folders of JPEGs')
    args = parser.parse_args(argv)
    print(f'{write_set(args.stamps, args.target)} photos written to {args.target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
