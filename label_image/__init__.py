"""`python -m label_image IMAGE_OR_DIR...`: classify images with a retrained model of any kind.

Kept free of imports so that `import label_image` and `--help` stay instant; TensorFlow is
imported only once there is work to do.
"""
