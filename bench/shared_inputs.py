"""The default inputs of the benchmarks: the real photos and module of ../shared."""
import argparse
import os

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      'shared')
PHOTOS = os.path.join(SHARED, 'data', 'flower_photos_small')
MODULE = os.path.join(SHARED, 'models', 'mobilenet_v2_100_224_feature_vector')


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    """--image_dir and --tfhub_module, defaulting to ../shared's flower photos and MobileNet V2."""
    parser.add_argument('--image_dir', default=PHOTOS, help='folder of class folders')
    parser.add_argument('--tfhub_module', default=MODULE, help='the feature extractor')
