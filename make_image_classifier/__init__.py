"""`make_image_classifier`: TF Hub's removed tool, its command line and outputs, on retrain's
engine (cached bottlenecks, NumPy training, retrain's export writers)."""
