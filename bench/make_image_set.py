"""A flower_photos-sized image set from a smaller one: `python -m bench.make_image_set SRC DST`.

The classic tutorials ran on the 3,670 photos of flower_photos (daisy 633, dandelion 898, roses 641,
sunflowers 699, tulips 799). Without internet access only a 500-photo sample is here, so this
fills each class of DST up to those counts from the class of the same name in SRC: the originals
as they are, then variants of them (mirrored, cropped, re-encoded at another JPEG quality), each
a distinct JPEG of about the same size and content, so decoding and the model do the same work as
on the real set. Timing only: the variants of one photo land in different splits, so accuracy on
this set overstates the real one.
"""
import argparse
import os
import shutil
import sys
from typing import Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=wrong-import-position

FLOWER_PHOTOS_COUNTS = {'daisy': 633, 'dandelion': 898, 'roses': 641, 'sunflowers': 699,
                        'tulips': 799}


def variant(jpeg: bytes, number: int) -> bytes:
    """The `number`-th (>= 1) variant of a photo: a mirror and/or a crop, re-encoded."""
    image = tf.io.decode_jpeg(jpeg, channels=3)
    if number % 2:
        image = tf.image.flip_left_right(image)
    crop = 1.0 - 0.04 * ((number // 2) % 4)
    if crop < 1.0:
        image = tf.image.central_crop(image, crop)
    return tf.io.encode_jpeg(image, quality=85 + number % 10).numpy()


def fill_class(source: str, target: str, count: int) -> int:
    """Copies the photos of `source` into `target`, then variants until there are `count`."""
    names = sorted(n for n in os.listdir(source) if n.lower().endswith(('.jpg', '.jpeg')))
    if not names:
        raise SystemExit(f'make_image_set: no JPEG photos in {source}')
    os.makedirs(target, exist_ok=True)
    for i in range(count):
        name = names[i % len(names)]
        number = i // len(names)
        if number == 0:
            shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
            continue
        with open(os.path.join(source, name), 'rb') as f:
            data = variant(f.read(), number)
        stem, _ = os.path.splitext(name)
        with open(os.path.join(target, f'{stem}_v{number}.jpg'), 'wb') as f:
            f.write(data)
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
