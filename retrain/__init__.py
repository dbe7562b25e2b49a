"""Transfer learning on image folders, compatible with TensorFlow's classic retrain.py."""
